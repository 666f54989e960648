using System.Diagnostics;
using System.Runtime.CompilerServices;
using Gateway.Core.Enforcement;
using Gateway.Core.Pricing;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using Gateway.Proxy.Metering;
using Gateway.Proxy.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Gateway.Proxy.Endpoints;

/// <summary>Settlement after the response: the usage event (bounded by <see cref="Metering.UsageSanity"/>), its price and metrics.</summary>
public sealed partial class ProxyRequestHandler
{
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FinishAsync(HttpContext context, Exchange x, Reservation? reservation, LeaseTicket? ticket)
    {
        if (!x.Route.Metered || reservation is null && ticket is null) return;
        try
        {
            // The client has everything; settlement must not delay the end of its response.
            if (!x.Incomplete && x.Status != 499 && !context.RequestAborted.IsCancellationRequested) await context.Response.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException)
        {
        }
        try
        {
            if (!x.Reached)
            {
                if (ticket is not null) await _leases!.ReleaseAsync(ticket, CancellationToken.None).ConfigureAwait(false);
                else await _enforcer.ReleaseAsync(reservation!, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            var usage = BuildUsage(x, _clientIp.Resolve(context));
            x.Target!.Health.CountTokens(usage.Tokens.Total);
            if (ticket is not null) await _leases!.SettleAsync(ticket, usage, Money.ToMicrosCeiling(usage.Cost), CancellationToken.None).ConfigureAwait(false);
            else await _enforcer.SettleAsync(new Settlement { Reservation = reservation!, Usage = usage }, CancellationToken.None).ConfigureAwait(false);
            RecordUsageMetrics(usage);
        }
        catch (Exception ex) when (ex is RedisConnectionException or RedisServerException or TimeoutException)
        {
            // The reservation stays and is charged by the ledger writer when its lease ends: never free.
            Log.SettlementFailed(_logger, x.RequestId, ex.Message);
        }
    }

    private UsageEvent BuildUsage(Exchange x, string clientIp)
    {
        var target = x.Target!;
        var model = x.Fields.Model!;
        var usage = x.Usage;
        TokenCounts tokens;
        var estimated = false;
        var succeeded = x.Status is >= 200 and < 300 || (x.Status == 499 && usage.OutputTextBytes > 0) || (x.Incomplete && usage.OutputTextBytes > 0);
        var estimatedOutput = (usage.OutputTextBytes + 3) / 4;
        if (usage.Seen)
        {
            tokens = usage.ToTokenCounts(x.Route.Usage);
            // A stream that ended early may have reported only its start (e.g. message_start's output of 1).
            if (x.Incomplete && estimatedOutput > tokens.Output)
            {
                tokens = tokens with { Output = estimatedOutput };
                estimated = true;
            }
            // Missing, invalid or absurd counts are estimated or capped (a broken or hostile upstream).
            tokens = UsageSanity.Bound(usage, tokens, x.RequestBytes, x.Fields.MaxTokens, x.Fields.Choices, estimatedOutput, out var adjusted);
            estimated |= adjusted;
        }
        else if (succeeded)
        {
            tokens = new TokenCounts(Math.Max(1, x.RequestBytes / 4), 0, 0, estimatedOutput);
            estimated = true;
        }
        else tokens = default;

        var (price, version) = ResolvePrice(target, model);
        if (price is null && tokens.Total > 0) Log.NoPrice(_logger, model);
        var cost = price is null ? 0m : CostCalculator.Compute(tokens, price, x.Caller.User.DiscountRate, x.Caller.Key.DiscountRate);
        var now = Stopwatch.GetTimestamp();
        return new UsageEvent
        {
            RequestId = x.RequestId,
            KeyId = x.Caller.Key.KeyId,
            KeyVersion = x.Caller.Key.Version,
            UserId = x.Caller.User.UserId,
            Upstream = target.Account.Name,
            Model = model,
            Route = x.Route.Name,
            Tokens = tokens,
            Cost = cost,
            PriceVersion = version,
            StartedAt = x.StartedAt,
            DurationMs = (int)Stopwatch.GetElapsedTime(x.Start, now).TotalMilliseconds,
            TimeToFirstByteMs = x.FirstByteAt == 0 ? null : (int)Stopwatch.GetElapsedTime(x.Start, x.FirstByteAt).TotalMilliseconds,
            Status = x.Status,
            Estimated = estimated,
            Streamed = x.Streamed,
            ClientIp = clientIp,
            ErrorCode = x.Status is >= 200 and < 400 ? "" : x.ErrorCode ?? UsageErrorCodes.ForStatus(x.Status),
        };
    }

    private void RecordUsageMetrics(UsageEvent usage)
    {
        var model = new KeyValuePair<string, object?>("model", usage.Model);
        if (usage.Tokens.Input > 0) _metrics.Tokens.Add(usage.Tokens.Input, model, new("kind", "input"));
        if (usage.Tokens.CachedInput > 0) _metrics.Tokens.Add(usage.Tokens.CachedInput, model, new("kind", "cached_input"));
        if (usage.Tokens.CacheWrite > 0) _metrics.Tokens.Add(usage.Tokens.CacheWrite, model, new("kind", "cache_write"));
        if (usage.Tokens.Output > 0) _metrics.Tokens.Add(usage.Tokens.Output, model, new("kind", "output"));
        if (usage.Cost > 0) _metrics.Cost.Add((double)usage.Cost, model);
    }

    /// <summary>The account's price override wins; else the price table (requested name, then upstream name).</summary>
    private (ModelPrice? Price, string Version) ResolvePrice(UpstreamTarget target, string model)
    {
        if (target.Model.Price is { } own) return (own, target.Account.PriceVersion ?? "ua:" + target.Account.Name);
        var p = _prices.Find(model) ?? _prices.Find(target.UpstreamModelName);
        return (p, _prices.Version);
    }
}
