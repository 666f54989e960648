using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gateway.Kubernetes.Client;

/// <summary>An object together with its parsed metadata (so generic code never needs to know <typeparamref name="T"/>'s shape).</summary>
public sealed record ObjectEntry<T>(T Object, ObjectMetadata Metadata) where T : class
{
    public string Key => ObjectKey.Of(Metadata.Namespace, Metadata.Name!);
}

/// <summary>"namespace/name" (or "name" for cluster-scoped objects), the cache and work-queue key.</summary>
public static class ObjectKey
{
    public static string Of(string? ns, string name) => string.IsNullOrEmpty(ns) ? name : ns + "/" + name;

    public static (string? Namespace, string Name) Split(string key)
    {
        var slash = key.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? (null, key) : (key[..slash], key[(slash + 1)..]);
    }
}

/// <summary>A page of a list: the items and the resourceVersion to watch from.</summary>
public sealed class ResourceList<T> where T : class
{
    public required IReadOnlyList<ObjectEntry<T>> Entries { get; init; }
    public IEnumerable<T> Items => Entries.Select(e => e.Object);
    public required string ResourceVersion { get; init; }
    /// <summary>Token for the next page when <see cref="ListOptions.Limit"/> cut the list short.</summary>
    public string? Continue { get; init; }
}

public sealed record ListOptions
{
    public string? LabelSelector { get; init; }
    public string? FieldSelector { get; init; }
    public string? ResourceVersion { get; init; }
    /// <summary>NotOlderThan or Exact.</summary>
    public string? ResourceVersionMatch { get; init; }
    public int? Limit { get; init; }
    public string? Continue { get; init; }
}

public sealed record WatchOptions
{
    public string? LabelSelector { get; init; }
    public string? FieldSelector { get; init; }
    /// <summary>Start after this version; empty means "synthetic ADDED for everything, then changes".</summary>
    public string? ResourceVersion { get; init; }
    public bool AllowWatchBookmarks { get; init; } = true;
    /// <summary>Server-side timeout; the stream ends cleanly after it.</summary>
    public int? TimeoutSeconds { get; init; }
}

public sealed record Preconditions(string? Uid = null, string? ResourceVersion = null);

public sealed record DeleteOptions
{
    public Preconditions? Preconditions { get; init; }
    /// <summary>Foreground, Background or Orphan.</summary>
    public string? PropagationPolicy { get; init; }
    public long? GracePeriodSeconds { get; init; }
}

public enum WatchEventType
{
    Added,
    Modified,
    Deleted,
    Bookmark,
}

/// <summary>One event of a watch stream. <see cref="Object"/> is null for bookmarks.</summary>
public sealed record WatchEvent<T>(WatchEventType Type, T? Object, ObjectMetadata Metadata) where T : class;

/// <summary>Typed access to one resource type (get, list, create, update, merge-patch, status, delete, watch).</summary>
public sealed class ResourceClient<T> where T : class
{
    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");
    private static readonly MediaTypeHeaderValue MergePatchMediaType = new("application/merge-patch+json");
    private readonly KubernetesClient _client;

    internal ResourceClient(KubernetesClient client, ResourceDefinition definition, JsonSerializerOptions jsonOptions)
    {
        _client = client;
        Definition = definition;
        JsonOptions = jsonOptions;
    }

    public ResourceDefinition Definition { get; }

    public JsonSerializerOptions JsonOptions { get; }

    public KubernetesClient Client => _client;

    public async Task<T> GetAsync(string? ns, string name, CancellationToken cancellationToken = default) =>
        (await GetEntryAsync(ns, name, cancellationToken)).Object;

    public async Task<ObjectEntry<T>> GetEntryAsync(string? ns, string name, CancellationToken cancellationToken = default)
    {
        using var response = await _client.SendAsync(HttpMethod.Get, Definition.ObjectPath(ns, name), null, false, cancellationToken);
        return await ReadEntryAsync(response, cancellationToken);
    }

    /// <summary>Like <see cref="GetAsync"/> but null when the object does not exist.</summary>
    public async Task<T?> TryGetAsync(string? ns, string name, CancellationToken cancellationToken = default)
    {
        try
        {
            return await GetAsync(ns, name, cancellationToken);
        }
        catch (KubernetesNotFoundException)
        {
            return null;
        }
    }

    /// <summary>One list call; pass <see cref="ListOptions.Limit"/>/<see cref="ListOptions.Continue"/> to page.</summary>
    public async Task<ResourceList<T>> ListAsync(string? ns = null, ListOptions? options = null, CancellationToken cancellationToken = default)
    {
        var query = new QueryBuilder()
            .Add("labelSelector", options?.LabelSelector)
            .Add("fieldSelector", options?.FieldSelector)
            .Add("resourceVersion", options?.ResourceVersion)
            .Add("resourceVersionMatch", options?.ResourceVersionMatch)
            .Add("limit", options?.Limit?.ToString(CultureInfo.InvariantCulture))
            .Add("continue", options?.Continue);
        using var response = await _client.SendAsync(HttpMethod.Get, Definition.CollectionPath(ns) + query, null, false, cancellationToken);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var node = await JsonNode.ParseAsync(stream, cancellationToken: cancellationToken) as JsonObject
            ?? throw new KubernetesApiException("The API server returned an empty list body.");
        var entries = new List<ObjectEntry<T>>();
        if (node["items"] is JsonArray items)
        {
            foreach (var item in items)
            {
                if (item is JsonObject o) entries.Add(Decode(o));
            }
        }
        return new ResourceList<T>
        {
            Entries = entries,
            ResourceVersion = node["metadata"]?["resourceVersion"]?.GetValue<string>() ?? "",
            Continue = node["metadata"]?["continue"]?.GetValue<string>() is { Length: > 0 } c ? c : null,
        };
    }

    /// <summary>Lists every page (following continue tokens) into one result.</summary>
    public async Task<ResourceList<T>> ListAllAsync(string? ns = null, ListOptions? options = null, int pageSize = 500, CancellationToken cancellationToken = default)
    {
        var all = new List<ObjectEntry<T>>();
        string? rv = null;
        string? token = null;
        do
        {
            var page = await ListAsync(ns, (options ?? new ListOptions()) with { Limit = pageSize, Continue = token }, cancellationToken);
            all.AddRange(page.Entries);
            rv ??= page.ResourceVersion;
            token = page.Continue;
        }
        while (token is not null);
        return new ResourceList<T> { Entries = all, ResourceVersion = rv ?? "" };
    }

    /// <summary>Creates the object in its metadata.namespace (or <paramref name="ns"/>, or the configured namespace).</summary>
    public async Task<T> CreateAsync(T obj, string? ns = null, CancellationToken cancellationToken = default)
    {
        var node = ToNode(obj);
        var targetNs = Definition.Namespaced ? ns ?? node["metadata"]?["namespace"]?.GetValue<string>() ?? _client.Configuration.Namespace : null;
        using var response = await _client.SendAsync(HttpMethod.Post, Definition.CollectionPath(targetNs), JsonContent(node, JsonMediaType), false, cancellationToken);
        return (await ReadEntryAsync(response, cancellationToken)).Object;
    }

    /// <summary>Replaces the object. Its metadata.resourceVersion makes this fail with a conflict if it changed meanwhile.</summary>
    public Task<T> UpdateAsync(T obj, CancellationToken cancellationToken = default) => PutAsync(obj, null, cancellationToken);

    /// <summary>Replaces only the status (the status subresource ignores everything else).</summary>
    public Task<T> UpdateStatusAsync(T obj, CancellationToken cancellationToken = default) => PutAsync(obj, "/status", cancellationToken);

    /// <summary>RFC 7386 merge patch. <paramref name="patch"/> is a JsonNode or any object serialized with the client's options.</summary>
    public Task<T> PatchAsync(string? ns, string name, object patch, CancellationToken cancellationToken = default) =>
        SendPatchAsync(ns, name, patch, "", cancellationToken);

    /// <summary>RFC 7386 merge patch of the status subresource.</summary>
    public Task<T> PatchStatusAsync(string? ns, string name, object patch, CancellationToken cancellationToken = default) =>
        SendPatchAsync(ns, name, patch, "/status", cancellationToken);

    /// <summary>
    /// Deletes the object. Returns it as the server reports it: with a deletionTimestamp when finalizers hold it,
    /// or null when the server answered with a Status.
    /// </summary>
    public async Task<T?> DeleteAsync(string? ns, string name, DeleteOptions? options = null, CancellationToken cancellationToken = default)
    {
        HttpContent? content = null;
        if (options is not null)
        {
            var body = new JsonObject { ["kind"] = "DeleteOptions", ["apiVersion"] = "v1" };
            if (options.Preconditions is { } p)
            {
                var pre = new JsonObject();
                if (p.Uid is not null) pre["uid"] = p.Uid;
                if (p.ResourceVersion is not null) pre["resourceVersion"] = p.ResourceVersion;
                body["preconditions"] = pre;
            }
            if (options.PropagationPolicy is not null) body["propagationPolicy"] = options.PropagationPolicy;
            if (options.GracePeriodSeconds is not null) body["gracePeriodSeconds"] = options.GracePeriodSeconds;
            content = JsonContent(body, JsonMediaType);
        }
        using var response = await _client.SendAsync(HttpMethod.Delete, Definition.ObjectPath(ns, name), content, false, cancellationToken);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var node = await JsonNode.ParseAsync(stream, cancellationToken: cancellationToken) as JsonObject;
        if (node is null || node["kind"]?.GetValue<string>() == "Status") return null;
        return Decode(node).Object;
    }

    /// <summary>
    /// Streams watch events until the server ends the stream or <paramref name="cancellationToken"/> fires.
    /// An ERROR event is thrown as the matching <see cref="KubernetesApiException"/> (410 → <see cref="KubernetesGoneException"/>).
    /// </summary>
    public async IAsyncEnumerable<WatchEvent<T>> WatchAsync(string? ns = null, WatchOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= new WatchOptions();
        var query = new QueryBuilder()
            .Add("watch", "1")
            .Add("labelSelector", options.LabelSelector)
            .Add("fieldSelector", options.FieldSelector)
            .Add("resourceVersion", options.ResourceVersion)
            .Add("allowWatchBookmarks", options.AllowWatchBookmarks ? "true" : null)
            .Add("timeoutSeconds", options.TimeoutSeconds?.ToString(CultureInfo.InvariantCulture));
        using var response = await _client.SendAsync(HttpMethod.Get, Definition.CollectionPath(ns) + query, null, true, cancellationToken);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (true)
        {
            string? line;
            try
            {
                line = await reader.ReadLineAsync(cancellationToken);
            }
            catch (IOException) when (!cancellationToken.IsCancellationRequested)
            {
                // The connection dropped mid-stream: end like a closed watch, the caller resumes from its last version.
                yield break;
            }
            if (line is null) yield break;
            if (line.Length == 0) continue;
            yield return ParseEvent(line);
        }
    }

    /// <summary>Reads the metadata of an object of this type (serializing it with the client's options).</summary>
    public ObjectMetadata MetadataOf(T obj) =>
        ToNode(obj)["metadata"]?.Deserialize<ObjectMetadata>(KubernetesJson.Options) ?? new ObjectMetadata();

    internal WatchEvent<T> ParseEvent(string line)
    {
        var node = JsonNode.Parse(line) as JsonObject ?? throw new KubernetesApiException("Malformed watch event.");
        var type = node["type"]?.GetValue<string>();
        var obj = node["object"] as JsonObject ?? throw new KubernetesApiException("Watch event without an object.");
        switch (type)
        {
            case "ERROR":
                var status = obj.Deserialize<KubernetesStatus>(KubernetesJson.Options) ?? new KubernetesStatus { Code = 500 };
                throw KubernetesApiException.FromStatus(status);
            case "BOOKMARK":
                return new WatchEvent<T>(WatchEventType.Bookmark, null, obj["metadata"]?.Deserialize<ObjectMetadata>(KubernetesJson.Options) ?? new ObjectMetadata());
        }
        var entry = Decode(obj);
        var kind = type switch
        {
            "ADDED" => WatchEventType.Added,
            "MODIFIED" => WatchEventType.Modified,
            "DELETED" => WatchEventType.Deleted,
            _ => throw new KubernetesApiException($"Unknown watch event type '{type}'."),
        };
        return new WatchEvent<T>(kind, entry.Object, entry.Metadata);
    }

    internal ObjectEntry<T> Decode(JsonObject node)
    {
        var meta = node["metadata"]?.Deserialize<ObjectMetadata>(KubernetesJson.Options) ?? new ObjectMetadata();
        try
        {
            var obj = node.Deserialize<T>(JsonOptions) ?? throw new KubernetesApiException($"Could not read a {Definition.Kind}.");
            return new ObjectEntry<T>(obj, meta);
        }
        catch (JsonException e)
        {
            // Name the object so the operator's log points at what to fix; the JSON error names the path, not values.
            throw new JsonException($"{Definition.Kind} {ObjectKey.Of(meta.Namespace, meta.Name ?? "?")} does not match the {typeof(T).Name} type: {e.Message}", e);
        }
    }

    private async Task<T> PutAsync(T obj, string? subresource, CancellationToken cancellationToken)
    {
        var node = ToNode(obj);
        var name = node["metadata"]?["name"]?.GetValue<string>();
        if (string.IsNullOrEmpty(name)) throw new ArgumentException($"The {Definition.Kind} has no metadata.name.", nameof(obj));
        var ns = Definition.Namespaced ? node["metadata"]?["namespace"]?.GetValue<string>() ?? _client.Configuration.Namespace : null;
        using var response = await _client.SendAsync(HttpMethod.Put, Definition.ObjectPath(ns, name) + subresource, JsonContent(node, JsonMediaType), false, cancellationToken);
        return (await ReadEntryAsync(response, cancellationToken)).Object;
    }

    private async Task<T> SendPatchAsync(string? ns, string name, object patch, string subresource, CancellationToken cancellationToken)
    {
        var node = patch as JsonNode ?? JsonSerializer.SerializeToNode(patch, patch.GetType(), JsonOptions)!;
        using var response = await _client.SendAsync(HttpMethod.Patch, Definition.ObjectPath(ns, name) + subresource, JsonContent(node, MergePatchMediaType), false, cancellationToken);
        return (await ReadEntryAsync(response, cancellationToken)).Object;
    }

    private async Task<ObjectEntry<T>> ReadEntryAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var node = await JsonNode.ParseAsync(stream, cancellationToken: cancellationToken) as JsonObject
            ?? throw new KubernetesApiException($"The API server returned an empty {Definition.Kind}.");
        return Decode(node);
    }

    private JsonObject ToNode(T obj)
    {
        var node = JsonSerializer.SerializeToNode(obj, JsonOptions) as JsonObject
            ?? throw new ArgumentException($"A {Definition.Kind} must serialize to a JSON object.", nameof(obj));
        node["apiVersion"] ??= Definition.ApiVersion;
        node["kind"] ??= Definition.Kind;
        return node;
    }

    private static ByteArrayContent JsonContent(JsonNode node, MediaTypeHeaderValue mediaType)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(node));
        content.Headers.ContentType = mediaType;
        return content;
    }

    private sealed class QueryBuilder
    {
        private readonly StringBuilder _sb = new();

        public QueryBuilder Add(string name, string? value)
        {
            if (string.IsNullOrEmpty(value)) return this;
            _sb.Append(_sb.Length == 0 ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
            return this;
        }

        public override string ToString() => _sb.ToString();
    }
}
