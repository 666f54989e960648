using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Security;
using Gateway.Proxy.Configuration;
using Gateway.Proxy.Forwarding;
using Gateway.Proxy.Requests;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Routing;

/// <summary>One (account, model) pair a request can be sent to, with everything precomputed.</summary>
public sealed class UpstreamTarget
{
    public required UpstreamProjection Account { get; init; }
    public required UpstreamModel Model { get; init; }
    public required UpstreamHealth Health { get; init; }
    /// <summary>Name sent upstream (upstreamName, else name).</summary>
    public required string UpstreamModelName { get; init; }
    /// <summary>The upstream model as a JSON string token, or null when it equals the requested name.</summary>
    public byte[]? EncodedUpstreamModel { get; init; }
    /// <summary>Base URL without a trailing slash and without its query.</summary>
    public required string BaseUrl { get; init; }
    /// <summary>"Bearer &lt;credential&gt;", built once per snapshot rather than per request; null without a credential.</summary>
    public string? BearerAuthorization { get; init; }
    /// <summary>Query of the base URL (e.g. Azure's api-version), without '?', or empty.</summary>
    public required string BaseQuery { get; init; }

    // Built on first use per route: a Uri costs a string concatenation and a parse per request otherwise.
    private readonly Uri?[] _uris = new Uri?[ProxyRoute.Count];

    /// <summary>The upstream URI for a route, built once per snapshot. The Azure API version is fixed per process (options).</summary>
    internal Uri UriFor(ProxyRoute route, string azureApiVersion) =>
        Volatile.Read(ref _uris[route.Ordinal]) ?? (_uris[route.Ordinal] = ProviderAdapter.BuildUri(this, route, azureApiVersion));
}

/// <summary>An immutable view of the upstream accounts, indexed by (dialect, model).</summary>
public sealed class UpstreamSnapshot
{
    public static readonly UpstreamSnapshot Empty = new([], new Dictionary<string, UpstreamTarget[]>(), new Dictionary<string, UpstreamTarget[]>());

    public UpstreamSnapshot(List<UpstreamProjection> accounts, Dictionary<string, UpstreamTarget[]> openAi, Dictionary<string, UpstreamTarget[]> anthropic)
    {
        Accounts = accounts; OpenAI = openAi; Anthropic = anthropic;
    }

    public List<UpstreamProjection> Accounts { get; }
    public Dictionary<string, UpstreamTarget[]> OpenAI { get; }
    public Dictionary<string, UpstreamTarget[]> Anthropic { get; }

    /// <summary>Targets serving a model on a dialect, sorted by priority; empty when none.</summary>
    public UpstreamTarget[] For(ApiDialect dialect, string model)
    {
        var map = dialect == ApiDialect.Anthropic ? Anthropic : OpenAI;
        return map.TryGetValue(model, out var t) ? t : [];
    }
}

/// <summary>
/// The upstream accounts from the Redis projection, cached in process, reloaded after an
/// "upstreams"/"all" invalidation or the TTL. Per-account health survives reloads. Credentials are stored
/// encrypted (<see cref="CredentialProtector"/>) and decrypted here into the in-memory snapshot only; an account
/// whose credential does not decrypt is left out of the snapshot, logged once and reported by a gauge.
/// </summary>
public sealed class UpstreamCatalog
{
    private readonly IRedisClient _redis;
    private readonly ProjectionKeys _keys;
    private readonly long _ttlTicks;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, UpstreamHealth> _health = new(StringComparer.Ordinal);
    private volatile UpstreamSnapshot? _snapshot;
    private long _expiresAt;
    private long _generation;
    private Task<UpstreamSnapshot>? _refresh;
    private readonly Lock _refreshLock = new();
    private readonly CredentialProtector? _credentials;
    private readonly ILogger _logger;
    // Account → "reason|keyId" of the failure last logged, so a bad credential is logged once, not per reload.
    private readonly ConcurrentDictionary<string, string> _credentialFailures = new(StringComparer.Ordinal);
    private volatile IReadOnlyList<(string Account, CredentialFailure Failure)> _unusable = [];

    /// <param name="time">Wall clock for the accounts' per-minute windows (UTC minutes shared by every replica).</param>
    /// <param name="credentials">Key ring for encrypted credentials; without it an encrypted account is unusable.</param>
    public UpstreamCatalog(IRedisClient redis, ProjectionKeys keys, IOptions<ProxyOptions> options, TimeProvider? time = null,
        CredentialProtector? credentials = null, ILogger<UpstreamCatalog>? logger = null)
    {
        _redis = redis;
        _keys = keys;
        _ttlTicks = (long)(options.Value.PolicyCacheTtlSeconds * Stopwatch.Frequency);
        _time = time ?? TimeProvider.System;
        _credentials = credentials;
        _logger = logger ?? NullLogger<UpstreamCatalog>.Instance;
    }

    /// <summary>Accounts of the last snapshot left out because their credential did not decrypt, for the gauge.</summary>
    public IReadOnlyList<(string Account, CredentialFailure Failure)> UnusableCredentials => _unusable;

    /// <summary>Health states of every account seen, for the cooldown gauge.</summary>
    public ICollection<UpstreamHealth> Health => _health.Values;

    /// <summary>The last loaded snapshot, without reloading; null until a request loaded one.</summary>
    public UpstreamSnapshot? Current => _snapshot;

    /// <summary>The live state of an account by name, once a snapshot listed it (disabled accounts have none).</summary>
    public bool TryGetHealth(string account, [MaybeNullWhen(false)] out UpstreamHealth health) => _health.TryGetValue(account, out health);

    /// <summary>The current snapshot; reloads from Redis when stale (others keep using the stale one meanwhile).</summary>
    public ValueTask<UpstreamSnapshot> GetAsync(CancellationToken cancellationToken)
    {
        var snapshot = _snapshot;
        if (snapshot is not null && Stopwatch.GetTimestamp() < Volatile.Read(ref _expiresAt)) return new ValueTask<UpstreamSnapshot>(snapshot);
        var refresh = StartRefresh();
        if (snapshot is not null && !refresh.IsCompleted) return new ValueTask<UpstreamSnapshot>(snapshot);
        return new ValueTask<UpstreamSnapshot>(refresh.WaitAsync(cancellationToken));
    }

    /// <summary>Marks the snapshot stale (invalidation message or reconnect).</summary>
    public void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        Volatile.Write(ref _expiresAt, 0);
    }

    private Task<UpstreamSnapshot> StartRefresh()
    {
        lock (_refreshLock)
        {
            if (_refresh is { IsCompleted: false }) return _refresh;
            _refresh = LoadAsync();
            return _refresh;
        }
    }

    private async Task<UpstreamSnapshot> LoadAsync()
    {
        var generation = Interlocked.Read(ref _generation);
        var replies = (await _redis.ExecuteAsync("MGET", [_keys.Upstreams, _keys.Epoch]).ConfigureAwait(false)).Items;
        var reply = replies[0];
        if (reply.IsNull && replies[1].IsNull)
        {
            // Redis lost the projection and the operator has not rebuilt it: the accounts did not change with that, so the
            // last list stays in use (and is checked again soon); with none yet, the request is told to retry.
            if (_snapshot is { } last) return last;
            throw new ProjectionMissingException();
        }
        var accounts = reply.IsNull ? [] : JsonSerializer.Deserialize<List<UpstreamProjection>>(reply.Bytes, TokenGateJson.Options) ?? [];
        var snapshot = Build(accounts);
        _snapshot = snapshot;
        if (Interlocked.Read(ref _generation) == generation) Volatile.Write(ref _expiresAt, Stopwatch.GetTimestamp() + _ttlTicks);
        return snapshot;
    }

    internal UpstreamSnapshot Build(List<UpstreamProjection> stored)
    {
        var accounts = Unseal(stored);
        var openAi = new Dictionary<string, List<UpstreamTarget>>(StringComparer.Ordinal);
        var anthropic = new Dictionary<string, List<UpstreamTarget>>(StringComparer.Ordinal);
        foreach (var account in accounts)
        {
            if (account.Disabled) continue;
            var health = _health.GetOrAdd(account.Name, static (n, time) => new UpstreamHealth(n, time), _time);
            var (baseUrl, query) = SplitBase(account.BaseUrl);
            var servesOpenAi = account.Provider != Providers.Anthropic;
            var servesAnthropic = account.Provider is Providers.Anthropic or Providers.OpenAICompatible;
            foreach (var model in account.Models)
            {
                if (string.IsNullOrEmpty(model.Name)) continue;
                var upstreamName = string.IsNullOrEmpty(model.UpstreamName) ? model.Name : model.UpstreamName;
                var target = new UpstreamTarget
                {
                    Account = account,
                    Model = model,
                    Health = health,
                    UpstreamModelName = upstreamName,
                    EncodedUpstreamModel = upstreamName == model.Name ? null : Encoding.UTF8.GetBytes(JsonSerializer.Serialize(upstreamName)),
                    BaseUrl = baseUrl,
                    BaseQuery = query,
                    BearerAuthorization = string.IsNullOrEmpty(account.Credential) ? null : "Bearer " + account.Credential,
                };
                if (servesOpenAi) Add(openAi, model.Name, target);
                if (servesAnthropic) Add(anthropic, model.Name, target);
            }
        }
        return new UpstreamSnapshot(accounts, Freeze(openAi), Freeze(anthropic));
    }

    /// <summary>The accounts with their credentials decrypted (in memory only); accounts that do not decrypt are left out.</summary>
    private List<UpstreamProjection> Unseal(List<UpstreamProjection> stored)
    {
        List<(string, CredentialFailure)>? unusable = null;
        var accounts = new List<UpstreamProjection>(stored.Count);
        foreach (var account in stored)
        {
            if (account.EncryptedCredential is not { } envelope)
            {
                // Plaintext: an operator in development mode (no key), or one older than encryption during an upgrade.
                accounts.Add(account);
                _credentialFailures.TryRemove(account.Name, out _);
                continue;
            }
            string? keyId;
            CredentialFailure failure;
            if (_credentials is null)
            {
                failure = CredentialFailure.UnknownKey;
                keyId = CredentialProtector.KeyIdOf(envelope);
            }
            else if (_credentials.TryUnprotect(envelope, account.Name, out var credential, out failure, out keyId))
            {
                accounts.Add(account with { Credential = credential, EncryptedCredential = null });
                _credentialFailures.TryRemove(account.Name, out _);
                continue;
            }
            (unusable ??= []).Add((account.Name, failure));
            var signature = failure + "|" + keyId;
            if (_credentialFailures.TryGetValue(account.Name, out var logged) && logged == signature) continue;
            _credentialFailures[account.Name] = signature;
            if (failure == CredentialFailure.UnknownKey) CredentialLog.UnknownKey(_logger, account.Name, keyId ?? "?");
            else CredentialLog.Invalid(_logger, account.Name, keyId ?? "?");
        }
        foreach (var name in _credentialFailures.Keys)
        {
            if (!stored.Exists(a => a.Name == name)) _credentialFailures.TryRemove(name, out _);
        }
        _unusable = unusable is null ? [] : unusable;
        return accounts;
    }

    private static (string BaseUrl, string Query) SplitBase(string baseUrl)
    {
        var q = baseUrl.IndexOf('?', StringComparison.Ordinal);
        var path = q < 0 ? baseUrl : baseUrl[..q];
        return (path.TrimEnd('/'), q < 0 ? "" : baseUrl[(q + 1)..]);
    }

    private static void Add(Dictionary<string, List<UpstreamTarget>> map, string model, UpstreamTarget target)
    {
        if (!map.TryGetValue(model, out var list)) map[model] = list = [];
        list.Add(target);
    }

    private static Dictionary<string, UpstreamTarget[]> Freeze(Dictionary<string, List<UpstreamTarget>> map)
    {
        var result = new Dictionary<string, UpstreamTarget[]>(map.Count, StringComparer.Ordinal);
        foreach (var (model, list) in map)
        {
            list.Sort(static (a, b) => a.Account.Priority.CompareTo(b.Account.Priority));
            result[model] = [.. list];
        }
        return result;
    }
}
