using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Gateway.Kubernetes.Client;
using Gateway.Testing.Kubernetes;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// What a client observes from an API server during a scripted sequence of calls, normalized so that a fake
/// and a real server can be compared line by line: values only a real clock or etcd can produce (uids,
/// resourceVersions, timestamps) become placeholders; managedFields (server-side apply bookkeeping, which
/// the fake does not model and the operator does not read) are dropped.
/// </summary>
public sealed partial class ApiServerTranscript(IKubeTestCluster cluster)
{
    private readonly List<string> _lines = [];

    public IKubeTestCluster Cluster { get; } = cluster;
    public IReadOnlyList<string> Lines => _lines;

    public ResourceClient<JsonObject> For(ResourceDefinition type) => Cluster.Admin.Resource<JsonObject>(type);

    /// <summary>Runs one step and records its result: the normalized object, or the error Status.</summary>
    public async Task<JsonObject?> Step(string name, Func<Task<JsonObject?>> call, Func<JsonObject, JsonNode?>? select = null)
    {
        try
        {
            var result = await call();
            _lines.Add($"{name}: {(result is null ? "null" : Canonical(select is null ? result : select(result)))}");
            return result;
        }
        catch (KubernetesApiException e)
        {
            _lines.Add($"{name}: {Error(e.Status)}");
            return null;
        }
    }

    public void Note(string name, string value) => _lines.Add($"{name}: {value}");

    public static string Error(KubernetesStatus s)
    {
        var causes = (s.Details?.Causes ?? []).Select(c => $"[{c.Reason}|{c.Field}|{Scrub(c.Message)}]").Order(StringComparer.Ordinal);
        return $"error {s.Code} {s.Reason} '{Message(s.Message)}' details=({s.Details?.Group}|{s.Details?.Kind}|{s.Details?.Name}) causes={string.Join("", causes)}";
    }

    /// <summary>
    /// The real server lists several errors in the order of a Go map walk (random): compare the bracketed
    /// list as a sorted multiset of its ", "-separated fragments.
    /// </summary>
    private static string Message(string? message)
    {
        var m = Scrub(message);
        var open = m.IndexOf(" is invalid: [", StringComparison.Ordinal);
        if (open < 0 || !m.EndsWith(']')) return m;
        var head = m[..(open + " is invalid: [".Length)];
        var fragments = m[head.Length..^1].Split(", ").Order(StringComparer.Ordinal);
        return head + string.Join(" ~ ", fragments) + "]";
    }

    /// <summary>A raw request (for what the typed client would hide: watch error events, HTTP codes).</summary>
    public async Task<(int Code, string Body)> RawAsync(HttpMethod method, string path, string? body = null, string contentType = "application/json")
    {
        using var http = new HttpClient(Cluster.Admin.Configuration.CreateHandler()) { BaseAddress = Cluster.Admin.Configuration.Server, Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, contentType);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        // A watch stays open: take what arrives first.
        using var stream = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(stream);
        var text = path.Contains("watch=1", StringComparison.Ordinal)
            ? await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20)) ?? ""
            : await reader.ReadToEndAsync();
        return ((int)response.StatusCode, text);
    }

    /// <summary>Sorted keys, placeholders for values that differ between any two servers.</summary>
    public static string Canonical(JsonNode? node) => Normalize(node?.DeepClone(), "")?.ToJsonString() ?? "null";

    private static JsonNode? Normalize(JsonNode? node, string path)
    {
        switch (node)
        {
            case JsonObject o:
                var sorted = new JsonObject();
                foreach (var (k, v) in o.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    var p = path + "." + k;
                    if (p is ".metadata.managedFields") continue;
                    sorted[k] = Placeholder(p, k, v) ?? Normalize(v, p);
                }
                return sorted;
            case JsonArray a:
                var copy = new JsonArray();
                foreach (var item in a) copy.Add(Normalize(item?.DeepClone(), path + "[]"));
                return copy;
            case JsonValue v when v.TryGetValue<string>(out var s):
                return JsonValue.Create(Scrub(s));
            default:
                return node?.DeepClone();
        }
    }

    private static JsonNode? Placeholder(string path, string key, JsonNode? value) => key switch
    {
        "uid" or "resourceVersion" when value is not null => "<" + key + ">",
        "creationTimestamp" or "deletionTimestamp" or "lastTransitionTime" or "firstTimestamp" or "lastTimestamp" or "eventTime"
            or "acquireTime" or "renewTime" or "time" when value is JsonValue v && v.TryGetValue<string>(out var s) =>
            // Keep the shape (seconds or microseconds, zone) so formatting differences still show.
            MicroTime().Replace(s, m => "<time" + (m.Groups[1].Success ? "." + new string('f', m.Groups[1].Value.Length - 1) : "") + "Z>"),
        _ => null,
    };

    /// <summary>Replaces uids and long numbers (resourceVersions in messages) with placeholders.</summary>
    public static string Scrub(string? s) =>
        s is null ? "" : LongNumber().Replace(Uuid().Replace(s, "<uid>"), "<n>");

    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")]
    private static partial Regex MicroTime();

    [GeneratedRegex(@"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")]
    private static partial Regex Uuid();

    [GeneratedRegex(@"\d{3,}")]
    private static partial Regex LongNumber();

    /// <summary>Fails with every line where the two transcripts differ.</summary>
    public static void AssertSame(ApiServerTranscript fake, ApiServerTranscript real)
    {
        var diffs = new List<string>();
        for (var i = 0; i < Math.Max(fake.Lines.Count, real.Lines.Count); i++)
        {
            var f = i < fake.Lines.Count ? fake.Lines[i] : "(missing)";
            var r = i < real.Lines.Count ? real.Lines[i] : "(missing)";
            if (f != r) diffs.Add($"  fake: {f}\n  real: {r}");
        }
        Assert.True(diffs.Count == 0, "The fake differs from the real API server:\n" + string.Join("\n", diffs));
    }

    public static JsonObject Parse(string yaml) => FakeCrdSchema.ParseYaml(yaml).Single();

    public static string Json(JsonNode node) => node.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
}
