using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Testing.Kubernetes;

/// <summary>A resource type the fake serves.</summary>
public sealed record FakeResourceType(string Group, string Version, string Plural, string Kind, bool Namespaced = true, bool HasStatus = false)
{
    public string ApiVersion => Group.Length == 0 ? Version : Group + "/" + Version;

    /// <summary>
    /// Whether a PUT without metadata.resourceVersion is accepted. Built-in types allow it; custom resources
    /// do not (the real server answers 422 "must be specified for an update").
    /// </summary>
    public bool AllowUnconditionalUpdate { get; init; } = true;

    /// <summary>
    /// A built-in kind (Secret, Event, Lease...) rather than a custom resource: as on the real server it has no
    /// metadata.generation, and list items carry no apiVersion/kind (typed lists; custom resources keep them).
    /// </summary>
    public bool BuiltIn { get; init; }

    /// <summary>Discovery details (kubectl uses them for short names and categories such as `kubectl get tokengate`).</summary>
    public string? Singular { get; init; }
    public IReadOnlyList<string> ShortNames { get; init; } = [];
    public IReadOnlyList<string> Categories { get; init; } = [];

    /// <summary>additionalPrinterColumns, rendered when a client asks for a Table (kubectl get).</summary>
    public IReadOnlyList<FakePrinterColumn> PrinterColumns { get; init; } = [];

    /// <summary>The openAPIV3Schema served under /openapi/v3 (kubectl explain); null: an open object.</summary>
    public JsonObject? Schema { get; init; }
}

/// <summary>One CRD additionalPrinterColumn.</summary>
public sealed record FakePrinterColumn(string Name, string Type, string JsonPath, string? Description = null, int Priority = 0, string? Format = null);

/// <summary>One validation failure reported as a cause of a 422 Invalid.</summary>
public sealed record FakeValidationCause(string Field, string Message, string Reason = "FieldValueInvalid");

/// <summary>A request the fake received (for counting in tests).</summary>
public sealed record FakeRequest(string Method, string Path, string Query);

/// <summary>
/// A loopback Kubernetes API server for tests: real HTTP, generic over group/version/resource, with the
/// semantics controllers depend on (global resourceVersion, generation, status subresource, finalizers,
/// optimistic concurrency, merge patch, label selectors, watch with bookmarks and 410 Gone).
/// State lives in memory for the life of one test.
/// </summary>
public sealed partial class FakeApiServer : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, FakeResourceType> _types = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SortedDictionary<string, JsonObject>> _objects = new(StringComparer.Ordinal);
    private readonly LinkedList<HistoryEntry> _history = new();
    private readonly List<Watcher> _watchers = [];
    private readonly Dictionary<string, Func<JsonObject, IEnumerable<FakeValidationCause>?>> _validators = new(StringComparer.Ordinal);
    private readonly List<InjectedFailure> _failures = [];
    private readonly ConcurrentQueue<FakeRequest> _requests = new();
    private WebApplication? _app;
    private long _resourceVersion = 1000;
    private long _compactedRv = 1000;

    /// <summary>How many events watch replay keeps; older start points get 410 Gone.</summary>
    public int HistoryCapacity { get; set; } = 10_000;

    /// <summary>How often watches that asked for bookmarks receive one.</summary>
    public TimeSpan BookmarkInterval { get; set; } = TimeSpan.FromSeconds(1);

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>When set before start, the fake serves HTTPS with this certificate (and asks for a client certificate).</summary>
    public X509Certificate2? ServerCertificate { get; set; }

    /// <summary>Subject of the client certificate of the last request over HTTPS, if any.</summary>
    public string? LastClientCertificateSubject { get; private set; }

    /// <summary>HTTP version of the last request (e.g. "HTTP/2").</summary>
    public string? LastProtocol { get; private set; }

    /// <summary>The Authorization header of the last request (tests assert that tokens are sent; never logged).</summary>
    public string? LastAuthorization { get; private set; }

    public IReadOnlyCollection<FakeRequest> Requests => _requests.ToArray();

    public long CurrentResourceVersion { get { lock (_gate) return _resourceVersion; } }

    public static FakeResourceType Secrets { get; } = new("", "v1", "secrets", "Secret") { BuiltIn = true };
    public static FakeResourceType Events { get; } = new("", "v1", "events", "Event") { BuiltIn = true };
    public static FakeResourceType ConfigMaps { get; } = new("", "v1", "configmaps", "ConfigMap") { BuiltIn = true };
    public static FakeResourceType Leases { get; } = new("coordination.k8s.io", "v1", "leases", "Lease") { BuiltIn = true };
    public static FakeResourceType ApiKeys { get; } = new("tokengate.io", "v1alpha1", "apikeys", "ApiKey", HasStatus: true) { AllowUnconditionalUpdate = false };
    public static FakeResourceType UserQuotas { get; } = new("tokengate.io", "v1alpha1", "userquotas", "UserQuota", HasStatus: true) { AllowUnconditionalUpdate = false };
    public static FakeResourceType UpstreamAccounts { get; } = new("tokengate.io", "v1alpha1", "upstreamaccounts", "UpstreamAccount", HasStatus: true) { AllowUnconditionalUpdate = false };

    /// <summary>Starts a fake on 127.0.0.1 with a free port and the default resource types registered.</summary>
    public static async Task<FakeApiServer> StartAsync(Action<FakeApiServer>? configure = null)
    {
        var server = new FakeApiServer();
        foreach (var t in new[] { Secrets, Events, ConfigMaps, Leases, ApiKeys, UserQuotas, UpstreamAccounts }) server.Register(t);
        configure?.Invoke(server);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (server.ServerCertificate is { } cert)
        {
            builder.WebHost.UseKestrelHttpsConfiguration();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(h =>
            {
                h.ServerCertificate = cert;
                h.ClientCertificateMode = ClientCertificateMode.AllowCertificate;
                h.AllowAnyClientCertificate();
            })));
        }
        else
        {
            builder.WebHost.UseUrls("http://127.0.0.1:0");
        }
        var app = builder.Build();
        app.Run(server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(address.TrimEnd('/') + "/");
        server._app = app;
        return server;
    }

    public void Register(FakeResourceType type)
    {
        lock (_gate)
        {
            var key = TypeKey(type.Group, type.Version, type.Plural);
            _types[key] = type;
            if (!_objects.ContainsKey(key)) _objects[key] = new SortedDictionary<string, JsonObject>(StringComparer.Ordinal);
        }
    }

    /// <summary>Makes create/update/patch of a resource return 422 Invalid when the hook returns causes.</summary>
    public void SetValidator(FakeResourceType type, Func<JsonObject, IEnumerable<FakeValidationCause>?> validator)
    {
        lock (_gate) _validators[TypeKey(type.Group, type.Version, type.Plural)] = validator;
    }

    /// <summary>Drops the watch history: any watch or continue from an earlier resourceVersion gets 410 Gone.</summary>
    public void CompactHistory()
    {
        lock (_gate)
        {
            _history.Clear();
            _compactedRv = _resourceVersion;
        }
    }

    /// <summary>Ends every open watch stream (the connection closes cleanly, as when an API server restarts).</summary>
    public void DropAllWatches()
    {
        lock (_gate)
        {
            foreach (var w in _watchers) w.Channel.Writer.TryComplete();
            _watchers.Clear();
        }
    }

    public int OpenWatchCount { get { lock (_gate) return _watchers.Count; } }

    /// <summary>The next <paramref name="times"/> requests matching the filter fail with the status code.</summary>
    public void InjectFailure(int statusCode, int times = 1, string? method = null, string? pathContains = null, bool? watch = null, int? retryAfterSeconds = null)
    {
        lock (_gate) _failures.Add(new InjectedFailure(statusCode, method, pathContains, watch) { Remaining = times, RetryAfterSeconds = retryAfterSeconds });
    }

    public void ClearInjectedFailures()
    {
        lock (_gate) _failures.Clear();
    }

    public int CountRequests(string? method = null, string? pathContains = null, bool? watch = null) =>
        _requests.Count(r => (method is null || string.Equals(r.Method, method, StringComparison.OrdinalIgnoreCase))
            && (pathContains is null || r.Path.Contains(pathContains, StringComparison.Ordinal))
            && (watch is null || IsWatchRequest(r.Path, r.Query) == watch));

    /// <summary>Reads an object directly from the store (a copy), or null.</summary>
    public JsonObject? GetObject(FakeResourceType type, string? ns, string name)
    {
        lock (_gate)
        {
            return _objects[TypeKey(type.Group, type.Version, type.Plural)].TryGetValue(ObjKey(ns, name), out var o) ? (JsonObject)o.DeepClone() : null;
        }
    }

    public IReadOnlyList<JsonObject> ListObjects(FakeResourceType type, string? ns = null)
    {
        lock (_gate)
        {
            return _objects[TypeKey(type.Group, type.Version, type.Plural)].Values
                .Where(o => ns is null || Meta(o)["namespace"]?.GetValue<string>() == ns)
                .Select(o => (JsonObject)o.DeepClone()).ToList();
        }
    }

    public async ValueTask DisposeAsync()
    {
        DropAllWatches();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    // ---------------------------------------------------------------- request routing

    private static bool IsWatchRequest(string path, string query) =>
        path.Contains("/watch/", StringComparison.Ordinal) || query.Contains("watch=1", StringComparison.Ordinal) || query.Contains("watch=true", StringComparison.Ordinal);

    private sealed record RequestTarget(FakeResourceType Type, string TypeKey, string? Namespace, string? Name, string? Subresource, bool LegacyWatch);

    private async Task HandleAsync(HttpContext ctx)
    {
        var req = ctx.Request;
        var path = req.Path.Value ?? "/";
        var query = req.QueryString.Value ?? "";
        _requests.Enqueue(new FakeRequest(req.Method, path, query));
        LastAuthorization = req.Headers.Authorization.Count > 0 ? req.Headers.Authorization.ToString() : null;
        if (ctx.Connection.ClientCertificate is { } clientCert) LastClientCertificateSubject = clientCert.Subject;
        LastProtocol = req.Protocol;

        InjectedFailure? failure = null;
        lock (_gate)
        {
            var isWatch = IsWatchRequest(path, query);
            failure = _failures.FirstOrDefault(f => f.Remaining > 0
                && (f.Method is null || string.Equals(f.Method, req.Method, StringComparison.OrdinalIgnoreCase))
                && (f.PathContains is null || path.Contains(f.PathContains, StringComparison.Ordinal))
                && (f.Watch is null || f.Watch == isWatch));
            if (failure is not null) failure.Remaining--;
        }
        if (failure is not null)
        {
            if (failure.RetryAfterSeconds is { } ra) ctx.Response.Headers.RetryAfter = ra.ToString(CultureInfo.InvariantCulture);
            await WriteStatus(ctx, failure.StatusCode, ReasonFor(failure.StatusCode), "injected failure", null, null);
            return;
        }

        if (await TryServeDiscoveryAsync(ctx, path)) return;

        var target = Route(path);
        if (target is null)
        {
            await WriteStatus(ctx, 404, "NotFound", "the server could not find the requested resource", null, null);
            return;
        }

        try
        {
            var watch = target.LegacyWatch || IsTrue(req.Query["watch"]);
            switch (req.Method)
            {
                case "GET" when watch:
                    await WatchAsync(ctx, target);
                    break;
                case "GET" when target.Name is null:
                    await ListAsync(ctx, target);
                    break;
                case "GET":
                    await GetAsync(ctx, target);
                    break;
                case "POST" when target.Name is null && target.Namespace is not null:
                    await CreateAsync(ctx, target);
                    break;
                case "PUT" when target.Name is not null:
                    await UpdateAsync(ctx, target, await ReadBody(ctx), null);
                    break;
                case "PATCH" when target.Name is not null:
                    await PatchAsync(ctx, target);
                    break;
                case "DELETE" when target.Name is not null:
                    await DeleteAsync(ctx, target);
                    break;
                default:
                    await WriteStatus(ctx, 405, "MethodNotAllowed", $"the server does not allow this method on the requested resource", null, null);
                    break;
            }
        }
        catch (JsonException)
        {
            await WriteStatus(ctx, 400, "BadRequest", "the request body is not valid JSON", null, null);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or InvalidCastException)
        {
            // A bug in the fake must be visible in the failing test, not hidden as a bare 500.
            await WriteStatus(ctx, 500, "InternalError", "fake API server error: " + e, null, null);
        }
    }

    private RequestTarget? Route(string path)
    {
        var seg = path.Trim('/').Split('/');
        int i;
        string group, version;
        if (seg.Length >= 2 && seg[0] == "api") { group = ""; version = seg[1]; i = 2; }
        else if (seg.Length >= 3 && seg[0] == "apis") { group = seg[1]; version = seg[2]; i = 3; }
        else return null;

        var legacyWatch = false;
        if (i < seg.Length && seg[i] == "watch") { legacyWatch = true; i++; }
        string? ns = null;
        if (i + 1 < seg.Length && seg[i] == "namespaces") { ns = seg[i + 1]; i += 2; }
        if (i >= seg.Length) return null;
        var plural = seg[i++];
        var name = i < seg.Length ? seg[i++] : null;
        var sub = i < seg.Length ? seg[i++] : null;
        if (i < seg.Length) return null;
        var key = TypeKey(group, version, plural);
        lock (_gate)
        {
            if (!_types.TryGetValue(key, out var type)) return null;
            if (sub is not null && (sub != "status" || !type.HasStatus)) return null;
            if (name is not null && ns is null && type.Namespaced) return null;
            return new RequestTarget(type, key, ns, name, sub, legacyWatch);
        }
    }

    // ---------------------------------------------------------------- handlers

    private async Task GetAsync(HttpContext ctx, RequestTarget t)
    {
        JsonObject? obj;
        lock (_gate) obj = _objects[t.TypeKey].TryGetValue(ObjKey(t.Namespace, t.Name!), out var o) ? (JsonObject)o.DeepClone() : null;
        if (obj is null)
        {
            await NotFound(ctx, t);
            return;
        }
        await WriteJson(ctx, 200, WantsTable(ctx) ? RenderTable(t.Type, [obj], null) : obj);
    }

    private async Task ListAsync(HttpContext ctx, RequestTarget t)
    {
        var q = ctx.Request.Query;
        FakeLabelSelector selector;
        try { selector = FakeLabelSelector.Parse(q["labelSelector"]); }
        catch (FormatException e)
        {
            await WriteStatus(ctx, 400, "BadRequest", e.Message, null, null);
            return;
        }
        var limit = int.TryParse(q["limit"], out var l) && l > 0 ? l : int.MaxValue;
        string? continueToken = q["continue"];
        string? rvParam = q["resourceVersion"];
        string? rvMatch = q["resourceVersionMatch"];
        var fieldSelector = (string?)q["fieldSelector"];
        var nameField = fieldSelector is not null && fieldSelector.StartsWith("metadata.name=", StringComparison.Ordinal) ? fieldSelector["metadata.name=".Length..] : null;

        JsonObject list;
        string? inconsistentContinue = null;
        lock (_gate)
        {
            long listRv = _resourceVersion;
            string? afterKey = null;
            if (!string.IsNullOrEmpty(continueToken))
            {
                if (!TryDecodeContinue(continueToken, out var tokenRv, out afterKey))
                {
                    goto badContinue;
                }
                if (tokenRv < _compactedRv)
                {
                    // Like the real server: the 410 carries a token that continues after the same key at the current
                    // resourceVersion, for clients that accept an inconsistent list.
                    inconsistentContinue = EncodeContinue(_resourceVersion, afterKey);
                    goto gone;
                }
                listRv = tokenRv;
            }
            else if (rvMatch == "Exact" && long.TryParse(rvParam, out var exact) && exact < _compactedRv)
            {
                goto gone;
            }

            var items = new JsonArray();
            string? lastKey = null;
            var more = false;
            var remaining = 0L;
            foreach (var (k, o) in _objects[t.TypeKey])
            {
                if (afterKey is not null && string.CompareOrdinal(k, afterKey) <= 0) continue;
                if (!InScope(o, t.Namespace) || !selector.Matches(Labels(o))) continue;
                if (nameField is not null && o["metadata"]?["name"]?.GetValue<string>() != nameField) continue;
                if (items.Count >= limit) { more = true; remaining++; continue; }
                var item = (JsonObject)o.DeepClone();
                if (t.Type.BuiltIn)
                {
                    item.Remove("kind");
                    item.Remove("apiVersion");
                }
                items.Add(item);
                lastKey = k;
            }
            var meta = new JsonObject { ["resourceVersion"] = listRv.ToString(CultureInfo.InvariantCulture) };
            if (more && lastKey is not null) meta["continue"] = EncodeContinue(listRv, lastKey);
            // Like etcd's count: only without selectors, which the storage cannot count.
            if (more && selector.IsEmpty && fieldSelector is null) meta["remainingItemCount"] = remaining;
            list = new JsonObject
            {
                ["kind"] = t.Type.Kind + "List",
                ["apiVersion"] = t.Type.ApiVersion,
                ["metadata"] = meta,
                ["items"] = items,
            };
        }
        if (WantsTable(ctx)) list = RenderTable(t.Type, ((JsonArray)list["items"]!).Select(i => (JsonObject)i!).ToList(), (JsonObject)list["metadata"]!);
        await WriteJson(ctx, 200, list);
        return;

    gone:
        if (inconsistentContinue is null)
        {
            await WriteStatus(ctx, 410, "Expired", "The resourceVersion for the provided list is too old.", null, null);
            return;
        }
        var expired = StatusObject(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.", null, null);
        expired["metadata"] = new JsonObject { ["continue"] = inconsistentContinue };
        await WriteJson(ctx, 410, expired);
        return;
    badContinue:
        await WriteStatus(ctx, 400, "BadRequest", "continue key is not valid", null, null);
    }

    private async Task CreateAsync(HttpContext ctx, RequestTarget t)
    {
        var body = await ReadBody(ctx);
        if (body is null)
        {
            await WriteStatus(ctx, 400, "BadRequest", "a JSON object is required", null, null);
            return;
        }
        var meta = EnsureMeta(body);
        var name = meta["name"]?.GetValue<string>();
        if (string.IsNullOrEmpty(name) && meta["generateName"]?.GetValue<string>() is { Length: > 0 } prefix)
        {
            name = prefix + Guid.NewGuid().ToString("N")[..5];
            meta["name"] = name;
        }
        if (string.IsNullOrEmpty(name))
        {
            await Invalid(ctx, t, "", [new FakeValidationCause("metadata.name", "name or generateName is required", "FieldValueRequired")]);
            return;
        }
        var bodyNs = meta["namespace"]?.GetValue<string>();
        if (bodyNs is not null && bodyNs != t.Namespace)
        {
            await WriteStatus(ctx, 400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request", null, null);
            return;
        }
        meta["namespace"] = t.Namespace;
        body["kind"] = t.Type.Kind;
        body["apiVersion"] = t.Type.ApiVersion;
        if (t.Type.HasStatus) body.Remove("status");
        FoldStringData(t, body);
        if (t.Type.BuiltIn && t.Type.Kind == "Event" && !body.ContainsKey("eventTime")) body["eventTime"] = null;
        List<FakeValidationCause> causes = [.. FakeBuiltInValidation.Create(t.Type, body), .. Validate(t, body) ?? []];
        if (causes.Count > 0)
        {
            await Invalid(ctx, t, name, causes);
            return;
        }

        JsonObject created;
        lock (_gate)
        {
            var store = _objects[t.TypeKey];
            var key = ObjKey(t.Namespace, name);
            if (store.ContainsKey(key)) goto exists;
            meta["uid"] = Guid.NewGuid().ToString();
            meta["creationTimestamp"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            if (!t.Type.BuiltIn) meta["generation"] = 1L;
            else meta.Remove("generation");
            meta.Remove("deletionTimestamp");
            meta["resourceVersion"] = NextRv();
            store[key] = body;
            Emit(t, "ADDED", body);
            created = (JsonObject)body.DeepClone();
        }
        await WriteJson(ctx, 201, created);
        return;

    exists:
        await WriteStatus(ctx, 409, "AlreadyExists", $"{t.Type.Plural}{GroupSuffix(t)} \"{name}\" already exists", name, t);
    }

    private async Task UpdateAsync(HttpContext ctx, RequestTarget t, JsonObject? body, JsonObject? mergePatch)
    {
        if (body is null && mergePatch is null)
        {
            await WriteStatus(ctx, 400, "BadRequest", "a JSON object is required", null, null);
            return;
        }
        var meta = body is null ? new JsonObject() : EnsureMeta(body);
        var bodyName = meta["name"]?.GetValue<string>();
        if (bodyName is not null && bodyName != t.Name)
        {
            await WriteStatus(ctx, 400, "BadRequest", "the name of the object does not match the name on the URL", null, null);
            return;
        }

        string? error = null;
        int code = 0;
        JsonObject? result = null;
        List<FakeValidationCause>? invalid = null;
        var invalidByResource = false;
        lock (_gate)
        {
            var store = _objects[t.TypeKey];
            var key = ObjKey(t.Namespace, t.Name!);
            if (!store.TryGetValue(key, out var current)) { code = 404; goto done; }
            var currentMeta = Meta(current);
            if (mergePatch is not null)
            {
                // Applied under the lock: a patch without a resourceVersion never conflicts, one with it is a precondition.
                body = (JsonObject)ApplyMergePatch(current, mergePatch)!;
                meta = EnsureMeta(body);
                if (mergePatch["metadata"]?["resourceVersion"] is null) meta["resourceVersion"] = currentMeta["resourceVersion"]!.DeepClone();
            }
            var sentRv = meta["resourceVersion"]?.GetValue<string>();
            if (string.IsNullOrEmpty(sentRv) && !t.Type.AllowUnconditionalUpdate)
            {
                invalid = [new FakeValidationCause("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")];
                // This one comes from the storage layer, which names the resource (apikeys.tokengate.io), not the kind.
                invalidByResource = true;
                code = 422;
                goto done;
            }
            if (!string.IsNullOrEmpty(sentRv) && sentRv != currentMeta["resourceVersion"]!.GetValue<string>())
            {
                code = 409;
                error = $"Operation cannot be fulfilled on {t.Type.Plural}{GroupSuffix(t)} \"{t.Name}\": the object has been modified; please apply your changes to the latest version and try again";
                goto done;
            }

            JsonObject next;
            if (t.Subresource == "status")
            {
                // Status writes change nothing but status.
                next = (JsonObject)current.DeepClone();
                if (body!["status"] is { } st) next["status"] = st.DeepClone();
                else next.Remove("status");
            }
            else
            {
                next = (JsonObject)body!.DeepClone();
                if (t.Type.HasStatus)
                {
                    if (current["status"] is { } st) next["status"] = st.DeepClone();
                    else next.Remove("status");
                }
                var nextMeta = EnsureMeta(next);
                // System-owned metadata cannot be changed by clients.
                foreach (var f in new[] { "uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace", "name" })
                {
                    if (currentMeta[f] is { } v) nextMeta[f] = v.DeepClone();
                    else nextMeta.Remove(f);
                }
                next["kind"] = t.Type.Kind;
                next["apiVersion"] = t.Type.ApiVersion;
                if (currentMeta["deletionTimestamp"] is not null && NewFinalizers(currentMeta, nextMeta) is { Count: > 0 } added)
                {
                    // The real server reports this cause twice (object-meta update validation runs twice); the message once.
                    var message = "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers " + GoStrings(added);
                    invalid = [new FakeValidationCause("metadata.finalizers", message, "FieldValueForbidden"), new FakeValidationCause("metadata.finalizers", message, "FieldValueForbidden")];
                    code = 422;
                    goto done;
                }
            }
            FoldStringData(t, next);
            if (FakeBuiltInValidation.Update(t.Type, current, next) is { Count: > 0 } builtIn) { invalid = builtIn; code = 422; goto done; }
            if (Validate(t, next) is { Count: > 0 } causes) { invalid = causes; code = 422; goto done; }

            var spec = SpecOf(current);
            if (!t.Type.BuiltIn && !JsonNode.DeepEquals(spec, SpecOf(next)))
            {
                Meta(next)["generation"] = (currentMeta["generation"]?.GetValue<long>() ?? 0) + 1;
            }
            if (JsonNode.DeepEquals(WithoutRv(current), WithoutRv(next)))
            {
                // A no-op update does not change resourceVersion or emit an event, as on a real server.
                result = (JsonObject)current.DeepClone();
                code = 200;
                goto done;
            }
            Meta(next)["resourceVersion"] = NextRv();
            if (Meta(next)["deletionTimestamp"] is not null && Finalizers(next).Count == 0)
            {
                store.Remove(key);
                Emit(t, "DELETED", next);
            }
            else
            {
                store[key] = next;
                Emit(t, "MODIFIED", next);
            }
            result = (JsonObject)next.DeepClone();
            code = 200;
        done:;
        }

        switch (code)
        {
            case 200: await WriteJson(ctx, 200, result!); break;
            case 404: await NotFound(ctx, t); break;
            case 409: await WriteStatus(ctx, 409, "Conflict", error!, t.Name, t); break;
            case 422: await Invalid(ctx, t, t.Name!, invalid!, invalidByResource); break;
        }
    }

    private async Task PatchAsync(HttpContext ctx, RequestTarget t)
    {
        var contentType = ctx.Request.ContentType ?? "";
        // Strategic merge patch (kubectl apply on built-in types) is treated as a merge patch: the same for maps
        // and scalars, which is all the fake's tests need; lists with merge keys would be replaced, not merged.
        var strategic = contentType.StartsWith("application/strategic-merge-patch+json", StringComparison.OrdinalIgnoreCase);
        if (strategic && t.Type.Group.Length > 0 && t.Type.Schema is not null)
        {
            await WriteStatus(ctx, 415, "UnsupportedMediaType", "strategic merge patch is not supported for custom resources", null, null);
            return;
        }
        if (!strategic && !contentType.StartsWith("application/merge-patch+json", StringComparison.OrdinalIgnoreCase))
        {
            await WriteStatus(ctx, 415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/merge-patch+json", null, null);
            return;
        }
        var patch = await ReadBody(ctx);
        if (patch is null)
        {
            await WriteStatus(ctx, 400, "BadRequest", "a JSON object is required", null, null);
            return;
        }
        await UpdateAsync(ctx, t, null, patch);
    }

    private async Task DeleteAsync(HttpContext ctx, RequestTarget t)
    {
        JsonObject? options = null;
        if (ctx.Request.ContentLength is > 0 || ctx.Request.Headers.TransferEncoding.Count > 0) options = await ReadBody(ctx);
        var preUid = options?["preconditions"]?["uid"]?.GetValue<string>();
        var preRv = options?["preconditions"]?["resourceVersion"]?.GetValue<string>();

        int code;
        string? error = null;
        JsonObject? result = null;
        lock (_gate)
        {
            var store = _objects[t.TypeKey];
            var key = ObjKey(t.Namespace, t.Name!);
            if (!store.TryGetValue(key, out var current)) { code = 404; goto done; }
            var meta = Meta(current);
            if (preUid is not null && preUid != meta["uid"]?.GetValue<string>())
            {
                code = 409;
                error = $"Operation cannot be fulfilled on {t.Type.Kind}{GroupSuffix(t)} \"{t.Name}\": the UID in the precondition ({preUid}) does not match the UID in record ({meta["uid"]}). The object might have been deleted and then recreated";
                goto done;
            }
            if (preRv is not null && preRv != meta["resourceVersion"]?.GetValue<string>())
            {
                code = 409;
                error = $"Operation cannot be fulfilled on {t.Type.Kind}{GroupSuffix(t)} \"{t.Name}\": the ResourceVersion in the precondition ({preRv}) does not match the ResourceVersion in record ({meta["resourceVersion"]}). The object might have been modified";
                goto done;
            }
            if (Finalizers(current).Count > 0)
            {
                if (meta["deletionTimestamp"] is null)
                {
                    meta["deletionTimestamp"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
                    meta["deletionGracePeriodSeconds"] = 0;
                    // As the real server does, starting a graceful deletion bumps the generation.
                    if (meta["generation"] is { } g) meta["generation"] = g.GetValue<long>() + 1;
                    meta["resourceVersion"] = NextRv();
                    Emit(t, "MODIFIED", current);
                }
                result = (JsonObject)current.DeepClone();
                code = 200;
                goto done;
            }
            store.Remove(key);
            meta["resourceVersion"] = NextRv();
            Emit(t, "DELETED", current);
            result = (JsonObject)current.DeepClone();
            code = 200;
        done:;
        }
        switch (code)
        {
            case 200: await WriteJson(ctx, 200, result!); break;
            case 404: await NotFound(ctx, t); break;
            // The precondition failures name the kind in their details, as the real server's do.
            default: await WriteJson(ctx, 409, StatusObject(409, "Conflict", error!, t.Name, t, byKind: true)); break;
        }
    }

    private async Task WatchAsync(HttpContext ctx, RequestTarget t)
    {
        var q = ctx.Request.Query;
        FakeLabelSelector selector;
        try { selector = FakeLabelSelector.Parse(q["labelSelector"]); }
        catch (FormatException e)
        {
            await WriteStatus(ctx, 400, "BadRequest", e.Message, null, null);
            return;
        }
        var bookmarks = IsTrue(q["allowWatchBookmarks"]);
        var timeout = int.TryParse(q["timeoutSeconds"], out var ts) && ts > 0 ? TimeSpan.FromSeconds(ts) : Timeout.InfiniteTimeSpan;
        string? rvParam = q["resourceVersion"];
        var nameFilter = t.Name;
        var fieldSelector = (string?)q["fieldSelector"];
        if (fieldSelector is not null && fieldSelector.StartsWith("metadata.name=", StringComparison.Ordinal)) nameFilter = fieldSelector["metadata.name=".Length..];

        var watcher = new Watcher(t.TypeKey, t.Namespace, nameFilter, selector, bookmarks);
        var initial = new List<string>();
        var gone = false;
        lock (_gate)
        {
            if (string.IsNullOrEmpty(rvParam) || rvParam == "0")
            {
                foreach (var o in _objects[t.TypeKey].Values)
                {
                    if (watcher.Matches(o)) initial.Add(EventJson("ADDED", o));
                }
            }
            else if (!long.TryParse(rvParam, out var fromRv) || fromRv < _compactedRv)
            {
                gone = true;
            }
            else
            {
                foreach (var h in _history)
                {
                    if (h.Rv > fromRv && h.TypeKey == t.TypeKey && watcher.Matches(h.Object)) initial.Add(EventJson(h.Type, h.Object));
                }
            }
            if (!gone)
            {
                foreach (var e in initial) watcher.Channel.Writer.TryWrite(e);
                _watchers.Add(watcher);
            }
        }

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        if (gone)
        {
            // The real server answers an expired watch with 200 and a single ERROR event carrying a 410 Status.
            var status = StatusObject(410, "Expired", $"too old resource version: {rvParam} ({_compactedRv})", null, null);
            await ctx.Response.WriteAsync(JsonSerializer.Serialize(new JsonObject { ["type"] = "ERROR", ["object"] = status }) + "\n");
            return;
        }
        await ctx.Response.Body.FlushAsync();

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        if (timeout != Timeout.InfiniteTimeSpan) cts.CancelAfter(timeout);
        using var bookmarkTimer = bookmarks ? new Timer(_ => SendBookmark(watcher, t.Type), null, BookmarkInterval, BookmarkInterval) : null;
        try
        {
            await foreach (var line in watcher.Channel.Reader.ReadAllAsync(cts.Token))
            {
                await ctx.Response.WriteAsync(line + "\n", cts.Token);
                await ctx.Response.Body.FlushAsync(cts.Token);
            }
        }
        catch (OperationCanceledException) { }
        catch (IOException) { }
        finally
        {
            lock (_gate) _watchers.Remove(watcher);
        }
    }

    private void SendBookmark(Watcher watcher, FakeResourceType type)
    {
        lock (_gate)
        {
            if (!_watchers.Contains(watcher)) return;
            var obj = new JsonObject
            {
                ["kind"] = type.Kind,
                ["apiVersion"] = type.ApiVersion,
                ["metadata"] = new JsonObject { ["resourceVersion"] = _resourceVersion.ToString(CultureInfo.InvariantCulture) },
            };
            watcher.Channel.Writer.TryWrite(EventJson("BOOKMARK", obj));
        }
    }

    // ---------------------------------------------------------------- state helpers (call under _gate)

    private string NextRv() => (++_resourceVersion).ToString(CultureInfo.InvariantCulture);

    private void Emit(RequestTarget t, string type, JsonObject obj)
    {
        var snapshot = (JsonObject)obj.DeepClone();
        var rv = long.Parse(Meta(snapshot)["resourceVersion"]!.GetValue<string>(), CultureInfo.InvariantCulture);
        _history.AddLast(new HistoryEntry(rv, t.TypeKey, type, snapshot));
        while (_history.Count > HistoryCapacity)
        {
            _compactedRv = _history.First!.Value.Rv;
            _history.RemoveFirst();
        }
        string? line = null;
        foreach (var w in _watchers)
        {
            if (w.TypeKey != t.TypeKey || !w.Matches(snapshot)) continue;
            line ??= EventJson(type, snapshot);
            w.Channel.Writer.TryWrite(line);
        }
    }

    private List<FakeValidationCause>? Validate(RequestTarget t, JsonObject obj)
    {
        Func<JsonObject, IEnumerable<FakeValidationCause>?>? v;
        lock (_gate) _validators.TryGetValue(t.TypeKey, out v);
        return v?.Invoke(obj)?.ToList();
    }

    private static List<string> NewFinalizers(JsonObject currentMeta, JsonObject nextMeta)
    {
        var before = (currentMeta["finalizers"] as JsonArray)?.Select(f => f!.GetValue<string>()).ToHashSet() ?? [];
        var after = (nextMeta["finalizers"] as JsonArray)?.Select(f => f!.GetValue<string>()) ?? [];
        return after.Where(f => !before.Contains(f)).ToList();
    }

    /// <summary>Go's %#v of a []string, as the real server prints it in messages.</summary>
    private static string GoStrings(IEnumerable<string> values) => "[]string{" + string.Join(", ", values.Select(v => "\"" + v + "\"")) + "}";

    /// <summary>Like the real server, a Secret's write-only stringData is merged into data (base64) and not stored.</summary>
    private static void FoldStringData(RequestTarget t, JsonObject obj)
    {
        if (t.Type.Group.Length != 0 || t.Type.Plural != "secrets" || obj["stringData"] is not JsonObject stringData) return;
        if (obj["data"] is not JsonObject data)
        {
            data = new JsonObject();
            obj["data"] = data;
        }
        foreach (var (k, v) in stringData) data[k] = Convert.ToBase64String(Encoding.UTF8.GetBytes(v?.GetValue<string>() ?? ""));
        obj.Remove("stringData");
    }

    private static JsonObject SpecOf(JsonObject obj)
    {
        var copy = (JsonObject)obj.DeepClone();
        copy.Remove("metadata");
        copy.Remove("status");
        copy.Remove("kind");
        copy.Remove("apiVersion");
        return copy;
    }

    private static JsonObject WithoutRv(JsonObject obj)
    {
        var copy = (JsonObject)obj.DeepClone();
        EnsureMeta(copy).Remove("resourceVersion");
        return copy;
    }

    private static JsonObject Meta(JsonObject obj) => (JsonObject)obj["metadata"]!;

    private static JsonObject EnsureMeta(JsonObject obj)
    {
        if (obj["metadata"] is JsonObject m) return m;
        var meta = new JsonObject();
        obj["metadata"] = meta;
        return meta;
    }

    private static List<string> Finalizers(JsonObject obj) =>
        (Meta(obj)["finalizers"] as JsonArray)?.Select(f => f!.GetValue<string>()).ToList() ?? [];

    private static Dictionary<string, string> Labels(JsonObject obj) =>
        (obj["metadata"]?["labels"] as JsonObject)?.ToDictionary(p => p.Key, p => p.Value?.GetValue<string>() ?? "") ?? [];

    private static bool InScope(JsonObject obj, string? ns) => ns is null || obj["metadata"]?["namespace"]?.GetValue<string>() == ns;

    /// <summary>RFC 7386 JSON merge patch.</summary>
    public static JsonNode? ApplyMergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObj) return patch?.DeepClone();
        var result = target is JsonObject t ? (JsonObject)t.DeepClone() : new JsonObject();
        foreach (var (key, value) in patchObj)
        {
            if (value is null) result.Remove(key);
            else result[key] = ApplyMergePatch(result[key], value);
        }
        return result;
    }

    private static string EventJson(string type, JsonObject obj) =>
        new JsonObject { ["type"] = type, ["object"] = obj.DeepClone() }.ToJsonString();

    private static string TypeKey(string group, string version, string plural) => group + "/" + version + "/" + plural;

    private static string ObjKey(string? ns, string name) => (ns ?? "") + "/" + name;

    private static string GroupSuffix(RequestTarget t) => t.Type.Group.Length == 0 ? "" : "." + t.Type.Group;

    private static bool IsTrue(string? v) => v is "1" or "true";

    private static string EncodeContinue(long rv, string key) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(rv.ToString(CultureInfo.InvariantCulture) + "|" + key));

    private static bool TryDecodeContinue(string token, out long rv, out string key)
    {
        rv = 0;
        key = "";
        try
        {
            var s = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            var bar = s.IndexOf('|', StringComparison.Ordinal);
            if (bar < 0 || !long.TryParse(s[..bar], out rv)) return false;
            key = s[(bar + 1)..];
            return true;
        }
        catch (FormatException) { return false; }
    }

    private static async Task<JsonObject?> ReadBody(HttpContext ctx)
    {
        var node = await JsonNode.ParseAsync(ctx.Request.Body);
        return node as JsonObject;
    }

    private static async Task WriteJson(HttpContext ctx, int code, JsonObject obj)
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(obj.ToJsonString());
    }

    private static Task NotFound(HttpContext ctx, RequestTarget t) =>
        WriteStatus(ctx, 404, "NotFound", $"{t.Type.Plural}{GroupSuffix(t)} \"{t.Name}\" not found", t.Name, t);

    /// <summary>
    /// 422 Invalid as apimachinery's NewInvalid writes it: the kind (or, from the storage layer, the resource)
    /// qualified by group, each distinct "field: message" once, bracketed when there are several; every cause listed.
    /// </summary>
    private static Task Invalid(HttpContext ctx, RequestTarget t, string name, IReadOnlyList<FakeValidationCause> causes, bool byResource = false)
    {
        var distinct = causes.Select(c => $"{c.Field}: {c.Message}").Distinct(StringComparer.Ordinal).ToList();
        var detail = distinct.Count == 1 ? distinct[0] : "[" + string.Join(", ", distinct) + "]";
        var qualified = (byResource ? t.Type.Plural : t.Type.Kind) + GroupSuffix(t);
        var status = StatusObject(422, "Invalid", $"{qualified} \"{name}\" is invalid: {detail}", name, t, byKind: !byResource);
        var arr = new JsonArray();
        foreach (var c in causes) arr.Add(new JsonObject { ["reason"] = c.Reason, ["message"] = c.Message, ["field"] = c.Field });
        ((JsonObject)status["details"]!)["causes"] = arr;
        return WriteJson(ctx, 422, status);
    }

    private static Task WriteStatus(HttpContext ctx, int code, string reason, string message, string? name, RequestTarget? t) =>
        WriteJson(ctx, code, StatusObject(code, reason, message, name, t));

    private static JsonObject StatusObject(int code, string reason, string message, string? name, RequestTarget? t, bool byKind = false)
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = reason,
            ["code"] = code,
        };
        if (t is not null)
        {
            var details = new JsonObject { ["kind"] = byKind ? t.Type.Kind : t.Type.Plural };
            if (name is not null) details["name"] = name;
            if (t.Type.Group.Length > 0) details["group"] = t.Type.Group;
            status["details"] = details;
        }
        return status;
    }

    private static string ReasonFor(int code) => code switch
    {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };

    private sealed record HistoryEntry(long Rv, string TypeKey, string Type, JsonObject Object);

    private sealed class InjectedFailure(int statusCode, string? method, string? pathContains, bool? watch)
    {
        public int StatusCode { get; } = statusCode;
        public string? Method { get; } = method;
        public string? PathContains { get; } = pathContains;
        public bool? Watch { get; } = watch;
        public int Remaining { get; set; }
        public int? RetryAfterSeconds { get; set; }
    }

    private sealed class Watcher(string typeKey, string? ns, string? name, FakeLabelSelector selector, bool bookmarks)
    {
        public string TypeKey { get; } = typeKey;
        public bool Bookmarks { get; } = bookmarks;
        public Channel<string> Channel { get; } = System.Threading.Channels.Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });

        public bool Matches(JsonObject obj) =>
            InScope(obj, ns)
            && (name is null || obj["metadata"]?["name"]?.GetValue<string>() == name)
            && selector.Matches(Labels(obj));
    }
}
