using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;

namespace Gateway.Proxy.Metering;

/// <summary>
/// Meter without enforcement: admits every request and settles by XADD of the usage event to the
/// usage stream. Used until the enforcement scripts are wired in.
/// </summary>
public sealed class StreamUsageMeter(IRedisClient redis, ProjectionKeys keys) : IRequestMeter
{
    public ValueTask<Admission> AdmitAsync(AdmissionRequest request, CancellationToken cancellationToken)
    {
        if (!redis.IsConnected) throw new RedisConnectionException("Redis is not connected.");
        return new ValueTask<Admission>(Admission.Allowed);
    }

    public async ValueTask SettleAsync(AdmissionRequest request, Admission admission, UsageEvent usage, long costMicros, CancellationToken cancellationToken)
    {
        var fields = usage.ToStreamFields();
        var args = new List<RedisArg>(fields.Count + 2) { keys.UsageStream, "*" };
        args.AddRange(fields);
        await redis.ExecuteAsync("XADD", args, cancellationToken).ConfigureAwait(false);
    }
}
