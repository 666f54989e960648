using System.Globalization;
using Gateway.Core.Redis;
using Gateway.Core.Usage;

namespace Gateway.Core.Enforcement;

/// <summary>
/// <see cref="UsageEvent.ToStreamFields"/> written straight into a pooled argument buffer, so settlement
/// builds no list per request. Must stay field-for-field equal to it (a test compares the two).
/// </summary>
internal static class UsageStreamFields
{
    public static void AddTo(RedisArgBuffer args, UsageEvent e)
    {
        args.Add("request_id"); args.Add(e.RequestId);
        args.Add("key_id"); args.Add(e.KeyId);
        args.Add("key_version"); args.Add(e.KeyVersion);
        args.Add("user_id"); args.Add(e.UserId);
        args.Add("upstream"); args.Add(e.Upstream);
        args.Add("model"); args.Add(e.Model);
        args.Add("route"); args.Add(e.Route);
        args.Add("input_tokens"); args.Add(e.Tokens.Input);
        args.Add("cached_input_tokens"); args.Add(e.Tokens.CachedInput);
        args.Add("cache_write_tokens"); args.Add(e.Tokens.CacheWrite);
        args.Add("output_tokens"); args.Add(e.Tokens.Output);
        args.Add("cost"); args.Add(e.Cost.ToString(CultureInfo.InvariantCulture));
        args.Add("price_version"); args.Add(e.PriceVersion);
        args.Add("started_at_ms"); args.Add(e.StartedAt.ToUnixTimeMilliseconds());
        args.Add("duration_ms"); args.Add(e.DurationMs);
        args.Add("ttfb_ms"); args.Add(e.TimeToFirstByteMs ?? -1);
        args.Add("status"); args.Add(e.Status);
        args.Add("estimated"); args.Add(e.Estimated ? 1 : 0);
        args.Add("streamed"); args.Add(e.Streamed ? 1 : 0);
    }
}
