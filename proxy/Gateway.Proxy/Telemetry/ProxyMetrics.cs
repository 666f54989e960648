using System.Diagnostics.Metrics;
using Gateway.Core.Redis;
using Gateway.Core.Security;
using Gateway.Proxy.Routing;

namespace Gateway.Proxy.Telemetry;

/// <summary>
/// The proxy's instruments on the "TokenGate.Proxy" meter. Labels are bounded: route names, model
/// names from the configured catalog, status classes, upstream account names — never key or user ids.
/// </summary>
public sealed class ProxyMetrics : IDisposable
{
    public const string MeterName = "TokenGate.Proxy";

    private readonly Meter _meter;

    public ProxyMetrics(UpstreamCatalog catalog, IRedisClient redis)
    {
        _meter = new Meter(MeterName);
        Requests = _meter.CreateCounter<long>("tokengate_proxy_requests_total", description: "Requests handled, by route, model and status class.");
        Duration = _meter.CreateHistogram<double>("tokengate_proxy_request_duration_seconds", "s", "Time from request start to the last byte, by route.");
        Overhead = _meter.CreateHistogram<double>("tokengate_proxy_overhead_seconds", "s", "Time the proxy itself added (excluding the upstream's time).");
        TimeToFirstToken = _meter.CreateHistogram<double>("tokengate_proxy_time_to_first_token_seconds", "s", "Time from request start to the first response byte from the upstream, by route.");
        Tokens = _meter.CreateCounter<long>("tokengate_proxy_tokens_total", description: "Tokens metered, by model and kind (input, cached_input, cache_write, output).");
        Cost = _meter.CreateCounter<double>("tokengate_proxy_cost_usd_total", description: "USD charged, by model.");
        Rejections = _meter.CreateCounter<long>("tokengate_proxy_rejections_total", description: "Requests the proxy refused, by reason.");
        UpstreamRequests = _meter.CreateCounter<long>("tokengate_proxy_upstream_requests_total", description: "Attempts sent upstream, by account and outcome.");
        InFlight = _meter.CreateUpDownCounter<long>("tokengate_proxy_inflight_requests", description: "Requests in flight in this process.");
        _meter.CreateObservableGauge("tokengate_proxy_upstream_cooldown", () => ObserveCooldown(catalog), description: "1 while an upstream account is cooling down or half-open.");
        _meter.CreateObservableGauge("tokengate_proxy_upstream_credential_unusable", () => ObserveUnusableCredentials(catalog),
            description: "1 for an upstream account left out because its stored credential does not decrypt, by reason (unknown_key: this proxy lacks the key id; invalid: altered or moved).");
        _meter.CreateObservableGauge("tokengate_proxy_redis_up", () => redis.IsConnected ? 1 : 0, description: "1 while the proxy's Redis connection is up (requests are refused with 503 otherwise).");
    }

    public Counter<long> Requests { get; }
    public Histogram<double> Duration { get; }
    public Histogram<double> Overhead { get; }
    public Histogram<double> TimeToFirstToken { get; }
    public Counter<long> Tokens { get; }
    public Counter<double> Cost { get; }
    public Counter<long> Rejections { get; }
    public Counter<long> UpstreamRequests { get; }
    public UpDownCounter<long> InFlight { get; }

    /// <summary>Bounded status class label.</summary>
    public static string CodeClass(int status) => status switch
    {
        < 200 => "1xx",
        < 300 => "2xx",
        < 400 => "3xx",
        < 500 => "4xx",
        _ => "5xx",
    };

    private static IEnumerable<Measurement<int>> ObserveCooldown(UpstreamCatalog catalog)
    {
        foreach (var h in catalog.Health) yield return new Measurement<int>(h.CooldownGauge, new KeyValuePair<string, object?>("upstream", h.Name));
    }

    private static IEnumerable<Measurement<int>> ObserveUnusableCredentials(UpstreamCatalog catalog)
    {
        foreach (var (account, failure) in catalog.UnusableCredentials)
        {
            yield return new Measurement<int>(1, new KeyValuePair<string, object?>("upstream", account),
                new KeyValuePair<string, object?>("reason", failure == CredentialFailure.UnknownKey ? "unknown_key" : "invalid"));
        }
    }

    public void Dispose() => _meter.Dispose();
}
