using System.Globalization;
using Gateway.Core.Redis;
using Gateway.Core.Usage;

namespace Gateway.Core.Enforcement;

/// <summary>
/// <see cref="UsageEvent.ToStreamFields"/> split into its field names, which the Finish script holds as
/// constants (see <see cref="EnforcementScripts"/>), and its values, which settlement writes straight into
/// a pooled argument buffer: no list per request, and no field name sent, parsed and interned per request.
/// Names and values together must stay field-for-field equal to <see cref="UsageEvent.ToStreamFields"/>
/// (a test compares them through <see cref="AddTo"/>).
/// </summary>
internal static class UsageStreamFields
{
    /// <summary>The stream entry's field names, in the order <see cref="AddValuesTo"/> writes the values.</summary>
    public static readonly string[] Names =
    [
        "request_id", "key_id", "key_version", "user_id", "upstream", "model", "route",
        "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "cost", "price_version",
        "started_at_ms", "duration_ms", "ttfb_ms", "status", "estimated", "streamed",
        "client_ip", "error_code",
    ];

    /// <summary>Appends the values of <paramref name="e"/>'s stream fields, in <see cref="Names"/> order.</summary>
    public static void AddValuesTo(RedisArgBuffer args, UsageEvent e)
    {
        args.Add(e.RequestId);
        args.Add(e.KeyId);
        args.Add(e.KeyVersion);
        args.Add(e.UserId);
        args.Add(e.Upstream);
        args.Add(e.Model);
        args.Add(e.Route);
        args.Add(e.Tokens.Input);
        args.Add(e.Tokens.CachedInput);
        args.Add(e.Tokens.CacheWrite);
        args.Add(e.Tokens.Output);
        args.Add(e.Cost.ToString(CultureInfo.InvariantCulture));
        args.Add(e.PriceVersion);
        args.Add(e.StartedAt.ToUnixTimeMilliseconds());
        args.Add(e.DurationMs);
        args.Add(e.TimeToFirstByteMs ?? -1);
        args.Add(e.Status);
        args.Add(e.Estimated ? 1 : 0);
        args.Add(e.Streamed ? 1 : 0);
        args.Add(e.ClientIp);
        args.Add(e.ErrorCode);
    }

    /// <summary>Field/value pairs as the stream entry holds them (names interleaved with the values).</summary>
    public static void AddTo(RedisArgBuffer args, UsageEvent e)
    {
        var values = new RedisArgBuffer(Names.Length);
        AddValuesTo(values, e);
        for (var i = 0; i < Names.Length; i++)
        {
            args.Add(Names[i]);
            args.Add(values[i]);
        }
    }
}
