using System.Globalization;
using Gateway.Core.Redis;

namespace Gateway.Core.Usage;

/// <summary>Tokens by kind, as the upstream reported them (or as estimated).</summary>
public readonly record struct TokenCounts(long Input, long CachedInput, long CacheWrite, long Output)
{
    public long Total => Input + CachedInput + CacheWrite + Output;
}

/// <summary>One request's usage, written by the proxy to the usage stream and persisted by the ledger writer.</summary>
public sealed record UsageEvent
{
    public required string RequestId { get; init; }
    public required string KeyId { get; init; }
    public int KeyVersion { get; init; }
    public required string UserId { get; init; }
    public string Upstream { get; init; } = "";
    public string Model { get; init; } = "";
    public string Route { get; init; } = "";
    public TokenCounts Tokens { get; init; }
    /// <summary>USD, 8 decimals.</summary>
    public decimal Cost { get; init; }
    public string PriceVersion { get; init; } = "";
    public DateTimeOffset StartedAt { get; init; }
    public int DurationMs { get; init; }
    public int? TimeToFirstByteMs { get; init; }
    public int Status { get; init; }
    public bool Estimated { get; init; }
    public bool Streamed { get; init; }
    /// <summary>The caller's IP address as the proxy resolved it (trusted proxies honoured); empty when unknown.</summary>
    public string ClientIp { get; init; } = "";
    /// <summary>A short code for a failed request (e.g. <c>rate_limit_exceeded</c>, <c>client_disconnected</c>); empty on success.</summary>
    public string ErrorCode { get; init; } = "";

    /// <summary>Set on an event charged again after Redis lost the original (a UsageOutbox recharge): unique per attempt,
    /// so the ledger writer refunds a duplicate once. Empty on every other event.</summary>
    public string RechargeId { get; init; } = "";

    /// <summary>What the recharge took from the balance (micro-dollars); what a duplicate gives back.</summary>
    public long RechargeMicros { get; init; }

    /// <summary>Field/value pairs for XADD.</summary>
    public List<RedisArg> ToStreamFields()
    {
        var inv = CultureInfo.InvariantCulture;
        List<RedisArg> fields =
        [
            "request_id", RequestId,
            "key_id", KeyId,
            "key_version", KeyVersion,
            "user_id", UserId,
            "upstream", Upstream,
            "model", Model,
            "route", Route,
            "input_tokens", Tokens.Input,
            "cached_input_tokens", Tokens.CachedInput,
            "cache_write_tokens", Tokens.CacheWrite,
            "output_tokens", Tokens.Output,
            "cost", Cost.ToString(inv),
            "price_version", PriceVersion,
            "started_at_ms", StartedAt.ToUnixTimeMilliseconds(),
            "duration_ms", DurationMs,
            "ttfb_ms", TimeToFirstByteMs ?? -1,
            "status", Status,
            "estimated", Estimated ? 1 : 0,
            "streamed", Streamed ? 1 : 0,
            "client_ip", ClientIp,
            "error_code", ErrorCode,
        ];
        if (RechargeId.Length > 0) fields.AddRange(["recharge_id", RechargeId, "recharge_micros", RechargeMicros]);
        return fields;
    }

    /// <summary>Parses the field map of a stream entry.</summary>
    public static UsageEvent FromStreamFields(IReadOnlyDictionary<string, string> f)
    {
        var inv = CultureInfo.InvariantCulture;
        long L(string k) => f.TryGetValue(k, out var v) && long.TryParse(v, NumberStyles.Integer, inv, out var n) ? n : 0;
        string S(string k) => f.TryGetValue(k, out var v) ? v : "";
        var ttfb = (int)L("ttfb_ms");
        return new UsageEvent
        {
            RequestId = S("request_id"),
            KeyId = S("key_id"),
            KeyVersion = (int)L("key_version"),
            UserId = S("user_id"),
            Upstream = S("upstream"),
            Model = S("model"),
            Route = S("route"),
            Tokens = new TokenCounts(L("input_tokens"), L("cached_input_tokens"), L("cache_write_tokens"), L("output_tokens")),
            Cost = decimal.Parse(f.TryGetValue("cost", out var c) && c.Length > 0 ? c : "0", NumberStyles.Number, inv),
            PriceVersion = S("price_version"),
            StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(L("started_at_ms")),
            DurationMs = (int)L("duration_ms"),
            TimeToFirstByteMs = ttfb < 0 ? null : ttfb,
            Status = (int)L("status"),
            Estimated = L("estimated") == 1,
            Streamed = L("streamed") == 1,
            // Absent in events written before these fields existed.
            ClientIp = S("client_ip"),
            ErrorCode = S("error_code"),
            RechargeId = S("recharge_id"),
            RechargeMicros = L("recharge_micros"),
        };
    }
}
