using System.IO.Pipelines;
using Gateway.MockUpstream.Recording;
using Gateway.MockUpstream.Requests;
using Gateway.MockUpstream.Responses;

namespace Gateway.MockUpstream.Hosting;

/// <summary>An endpoint's own work, after the common steps (auth, controls, body) passed.</summary>
internal delegate Task MockEndpoint(MockCall call);

/// <summary>How an endpoint takes its input.</summary>
internal enum BodyKind
{
    /// <summary>No body needed (GET).</summary>
    None,
    /// <summary>A JSON object with a "model".</summary>
    JsonWithModel,
    /// <summary>An Azure deployment route: JSON body, model optional (the deployment names it), api-version required.</summary>
    AzureJson,
}

/// <summary>
/// The steps every API request goes through, in order: count, read the body, record, authenticate,
/// delay, faults and injected statuses, body validation, then the endpoint.
/// </summary>
internal sealed partial class MockPipeline(RequestRecorder recorder, RequestStats stats, string? apiKey, ILogger logger, OAuth.OAuthTokenStore? requiredTokens = null)
{
    // Credential headers besides Authorization: Anthropic's and Azure's.
    private static readonly string[] s_keyHeaders = ["x-api-key", "api-key"];

    public RequestDelegate Create(ApiFamily family, BodyKind body, MockEndpoint endpoint) =>
        context => RunAsync(context, family, body, endpoint);

    private async Task RunAsync(HttpContext context, ApiFamily family, BodyKind bodyKind, MockEndpoint endpoint)
    {
        var ct = context.RequestAborted;
        var httpRequest = context.Request;
        stats.Count(httpRequest.Path.Value ?? "/");
        try
        {
            var request = await ReadBodyAsync(httpRequest, bodyKind, ct);

            if (!Authenticate(httpRequest.Headers, out var failure))
            {
                Log.Unauthenticated(logger, httpRequest.Path);
                await ProviderErrors.WriteAsync(context, family, StatusCodes.Status401Unauthorized, failure);
                return;
            }

            var controls = MockControls.From(httpRequest.Headers);
            if (controls.LatencyMs > 0) await Task.Delay(controls.LatencyMs, ct);
            if (controls.Fault == MockFault.Drop)
            {
                Log.Dropped(logger, httpRequest.Path);
                context.Abort();
                return;
            }
            if (controls.Status >= 400)
            {
                if (controls.RetryAfterSeconds > 0) context.Response.Headers.RetryAfter = controls.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await ProviderErrors.WriteAsync(context, family, controls.Status, ProviderErrors.InjectedMessage(controls.Status));
                return;
            }

            string? model = null;
            if (bodyKind != BodyKind.None)
            {
                if (request.Error is { } error)
                {
                    await ProviderErrors.WriteAsync(context, family, StatusCodes.Status400BadRequest, error);
                    return;
                }
                model = request.Model;
                if (bodyKind == BodyKind.AzureJson)
                {
                    if (string.IsNullOrEmpty(httpRequest.Query["api-version"]))
                    {
                        await ProviderErrors.WriteAsync(context, family, StatusCodes.Status400BadRequest,
                            "Missing the required query parameter 'api-version' (Azure OpenAI routes need it, e.g. ?api-version=2024-10-21).");
                        return;
                    }
                    if (string.IsNullOrEmpty(model)) model = context.GetRouteValue("deployment") as string;
                }
                if (string.IsNullOrEmpty(model))
                {
                    await ProviderErrors.WriteAsync(context, family, StatusCodes.Status400BadRequest,
                        "You must provide a model parameter.");
                    return;
                }
            }

            await endpoint(new MockCall(context, request, controls, family, model ?? ""));
        }
        catch (StreamCutException)
        {
            Log.Cut(logger, httpRequest.Path);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away (or a fault aborted the connection); nothing left to answer.
        }
        catch (IOException) when (ct.IsCancellationRequested)
        {
            // Same, noticed while reading the body or writing the reply.
        }
    }

    private async Task<MockRequest> ReadBodyAsync(HttpRequest httpRequest, BodyKind bodyKind, CancellationToken ct)
    {
        var reader = httpRequest.BodyReader;
        ReadResult read;
        while (true)
        {
            read = await reader.ReadAsync(ct);
            if (read.IsCompleted || read.IsCanceled) break;
            // Keep everything buffered until the body is complete: it is parsed in one piece.
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
        var buffer = read.Buffer;
        try
        {
            recorder.Record(httpRequest, buffer);
            return bodyKind == BodyKind.None ? MockRequest.Empty : MockRequest.Parse(buffer);
        }
        finally
        {
            reader.AdvanceTo(buffer.End);
        }
    }

    // Every credential header sent must carry the configured key: a proxy that leaks its client's
    // key next to the upstream's is caught here instead of passing unnoticed.
    private bool Authenticate(IHeaderDictionary headers, out string failure)
    {
        var presented = 0;
        var authorization = headers.Authorization;
        if (authorization.Count > 0)
        {
            var v = authorization.ToString().AsSpan().Trim();
            if (v.Length > 7 && v[..7].Equals("Bearer ", StringComparison.OrdinalIgnoreCase)) v = v[7..].Trim();
            else v = default;
            if (!Matches(v)) return Fail(out failure);
            presented++;
        }
        foreach (var name in s_keyHeaders)
        {
            if (!headers.TryGetValue(name, out var value)) continue;
            if (!Matches(value.ToString().AsSpan().Trim())) return Fail(out failure);
            presented++;
        }
        if (presented == 0)
        {
            failure = "No API key was provided. Send it in 'Authorization: Bearer <key>', 'x-api-key' or 'api-key'.";
            return false;
        }
        failure = "";
        return true;
    }

    private bool Matches(ReadOnlySpan<char> credential)
    {
        if (credential.IsEmpty) return false;
        // Mock:OAuth:RequireAccessToken: the configured key (if any) or a live access token from /oauth/token.
        if (requiredTokens is not null)
            return (!string.IsNullOrEmpty(apiKey) && credential.SequenceEqual(apiKey)) || requiredTokens.TryUseAccessToken(credential.ToString());
        return string.IsNullOrEmpty(apiKey) || credential.SequenceEqual(apiKey);
    }

    private bool Fail(out string failure)
    {
        failure = requiredTokens is not null
            ? "The access token is expired, revoked or was not issued by the mock's OAuth provider (Mock:OAuth:RequireAccessToken is on)."
            : "Incorrect API key provided to the mock upstream (it expects the key configured as Mock:ApiKey).";
        return false;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Rejected a request to {Path} without a valid credential")]
        public static partial void Unauthenticated(ILogger logger, PathString path);

        [LoggerMessage(2, LogLevel.Debug, "Dropped the connection of a request to {Path} (x-mock-fault: drop)")]
        public static partial void Dropped(ILogger logger, PathString path);

        [LoggerMessage(3, LogLevel.Debug, "Cut the response to {Path} mid-way (x-mock-fault: cut)")]
        public static partial void Cut(ILogger logger, PathString path);
    }
}
