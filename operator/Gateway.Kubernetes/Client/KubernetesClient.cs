using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Kubernetes.Client;

/// <summary>Identifies a resource type: where it lives in the API and what its objects are called.</summary>
public sealed record ResourceDefinition(string Group, string Version, string Plural, string Kind, bool Namespaced = true)
{
    public string ApiVersion => Group.Length == 0 ? Version : Group + "/" + Version;

    public static ResourceDefinition Secrets { get; } = new("", "v1", "secrets", "Secret");
    public static ResourceDefinition ConfigMaps { get; } = new("", "v1", "configmaps", "ConfigMap");
    public static ResourceDefinition Events { get; } = new("", "v1", "events", "Event");
    public static ResourceDefinition Leases { get; } = new("coordination.k8s.io", "v1", "leases", "Lease");

    /// <summary>"/api/v1" or "/apis/group/version".</summary>
    internal string BasePath => Group.Length == 0 ? "api/" + Version : "apis/" + Group + "/" + Version;

    internal string CollectionPath(string? ns) =>
        Namespaced && ns is not null ? $"{BasePath}/namespaces/{Uri.EscapeDataString(ns)}/{Plural}" : $"{BasePath}/{Plural}";

    internal string ObjectPath(string? ns, string name) => CollectionPath(ns) + "/" + Uri.EscapeDataString(name);
}

/// <summary>
/// The connection to one API server: authentication, TLS, and Status-to-exception mapping.
/// Create typed clients with <see cref="Resource{T}"/>. Thread-safe; share one per process.
/// </summary>
public sealed class KubernetesClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly ILogger _logger;

    public KubernetesClient(KubernetesClientConfiguration configuration, ILoggerFactory? loggerFactory = null)
    {
        Configuration = configuration;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Gateway.Kubernetes.Client");
        // Watches stay open for minutes; per-request timeouts are applied below instead of HttpClient.Timeout.
        _http = new HttpClient(configuration.CreateHandler(), disposeHandler: true)
        {
            BaseAddress = configuration.Server,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        if (configuration.Server.Scheme == Uri.UriSchemeHttps)
        {
            // Like client-go: HTTP/2 over TLS multiplexes the watches on one connection and its pings detect dead peers.
            _http.DefaultRequestVersion = System.Net.HttpVersion.Version20;
            _http.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        }
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("tokengate-operator/1.0");
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
    }

    public KubernetesClientConfiguration Configuration { get; }

    /// <summary>A typed client for one resource type; <paramref name="jsonOptions"/> (de)serialize <typeparamref name="T"/>.</summary>
    public ResourceClient<T> Resource<T>(ResourceDefinition definition, JsonSerializerOptions? jsonOptions = null) where T : class =>
        new(this, definition, jsonOptions ?? KubernetesJson.Options);

    /// <summary>How often a request answered with 429/5xx and a Retry-After header is retried (client-go retries 10 times).</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>Sends a request; throws a typed <see cref="KubernetesApiException"/> for non-success answers.</summary>
    internal async Task<HttpResponseMessage> SendAsync(HttpMethod method, string pathAndQuery, HttpContent? content, bool streaming, CancellationToken cancellationToken)
    {
        using var timeout = streaming ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout?.CancelAfter(Configuration.RequestTimeout);
        var ct = timeout?.Token ?? cancellationToken;
        // The body is kept as bytes so a throttled request can be sent again.
        var body = content is null ? null : await content.ReadAsByteArrayAsync(ct);
        var contentType = content?.Headers.ContentType;
        content?.Dispose();

        for (var attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, pathAndQuery) { Version = _http.DefaultRequestVersion, VersionPolicy = _http.DefaultVersionPolicy };
            if (body is not null)
            {
                request.Content = new ByteArrayContent(body);
                request.Content.Headers.ContentType = contentType;
            }
            if (Configuration.Token is { } tokenSource && await tokenSource.GetTokenAsync(ct) is { Length: > 0 } token)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            else if (Configuration.Username is not null)
            {
                var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes(Configuration.Username + ":" + Configuration.Password));
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
            }

            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, streaming ? HttpCompletionOption.ResponseHeadersRead : HttpCompletionOption.ResponseContentRead, ct);
            }
            catch (OperationCanceledException) when (timeout is not null && timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"{method} {StripQuery(pathAndQuery)} timed out after {Configuration.RequestTimeout}.");
            }

            if (response.IsSuccessStatusCode) return response;
            using (response)
            {
                // API priority and fairness answers 429 with Retry-After; the request was not processed, so it is safe to resend.
                var code = (int)response.StatusCode;
                if (attempt < MaxRetries && (code == 429 || code >= 500) && RetryAfter(response) is { } wait)
                {
                    Log.Throttled(_logger, method.Method, StripQuery(pathAndQuery), code, wait.TotalSeconds);
                    await Task.Delay(wait, ct);
                    continue;
                }
                var status = await ReadStatusAsync(response, cancellationToken);
                Log.RequestFailed(_logger, method.Method, StripQuery(pathAndQuery), status.Code, status.Reason);
                throw KubernetesApiException.FromStatus(status);
            }
        }
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var delta = response.Headers.RetryAfter?.Delta;
        if (delta is null) return null;
        // Bound the wait: a huge Retry-After should surface as an error, not a hang.
        return delta.Value > TimeSpan.FromSeconds(30) ? null : delta.Value < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : delta.Value;
    }

    internal static async Task<KubernetesStatus> ReadStatusAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var status = await response.Content.ReadFromJsonAsync(KubernetesJson.Options, cancellationToken);
            if (status is { Kind: "Status" })
            {
                if (status.Code == 0) status.Code = (int)response.StatusCode;
                return status;
            }
        }
        catch (JsonException)
        {
            // Not a Status body (e.g. a proxy's HTML page); fall through to a generic status. The body is
            // deliberately not echoed: it may contain request data.
        }
        return KubernetesApiException.StatusFor(response.StatusCode);
    }

    private static string StripQuery(string pathAndQuery)
    {
        var q = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        return q < 0 ? pathAndQuery : pathAndQuery[..q];
    }

    public void Dispose() => _http.Dispose();
}

internal static class HttpContentJsonExtensions
{
    public static async Task<KubernetesStatus?> ReadFromJsonAsync(this HttpContent content, JsonSerializerOptions options, CancellationToken ct)
    {
        await using var stream = await content.ReadAsStreamAsync(ct);
        return await JsonSerializer.DeserializeAsync<KubernetesStatus>(stream, options, ct);
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Kubernetes {Method} {Path} failed: {Code} {Reason}")]
    public static partial void RequestFailed(ILogger logger, string method, string path, int code, string? reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Kubernetes {Method} {Path} answered {Code}; retrying in {Seconds}s as asked")]
    public static partial void Throttled(ILogger logger, string method, string path, int code, double seconds);
}
