using Gateway.Kubernetes.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Kubernetes.Runtime;

/// <summary>Leader election settings (client-go defaults: 15 s lease, 10 s renew deadline, 2 s retry).</summary>
public sealed record LeaderElectionOptions
{
    public required string LeaseName { get; init; }
    public required string LeaseNamespace { get; init; }
    /// <summary>Unique per replica, e.g. the pod name plus a random suffix.</summary>
    public required string Identity { get; init; }
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan RenewDeadline { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan RetryPeriod { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>On graceful stop, hand the lease back so another replica takes over at once.</summary>
    public bool ReleaseOnCancel { get; init; } = true;
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// client-go's leader election on a coordination.k8s.io/v1 Lease. A candidate takes the lease when it is free
/// or when its holder has not renewed it for leaseDuration (measured on the local clock from when this
/// candidate last saw the record change, so clocks need not agree). The leader renews every retryPeriod and
/// steps down if it cannot renew within renewDeadline.
/// </summary>
public sealed partial class LeaderElector : IDisposable
{
    private readonly ResourceClient<Lease> _leases;
    private readonly LeaderElectionOptions _options;
    private readonly ILogger _logger;
    private readonly IDisposable _metric;
    private LeaseSpec? _observed;
    private DateTimeOffset _observedTime;
    private volatile bool _isLeader;
    private volatile string? _currentLeader;

    public LeaderElector(KubernetesClient client, LeaderElectionOptions options, ILoggerFactory? loggerFactory = null)
    {
        if (options.LeaseDuration <= options.RenewDeadline) throw new ArgumentException("LeaseDuration must be greater than RenewDeadline.", nameof(options));
        if (options.RenewDeadline <= options.RetryPeriod) throw new ArgumentException("RenewDeadline must be greater than RetryPeriod.", nameof(options));
        _leases = client.Resource<Lease>(ResourceDefinition.Leases);
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Gateway.Kubernetes.LeaderElection");
        _metric = OperatorMetrics.RegisterElector(() => _isLeader);
    }

    public string Identity => _options.Identity;

    public bool IsLeader => _isLeader;

    /// <summary>The holder last observed in the lease.</summary>
    public string? CurrentLeader => _currentLeader;

    /// <summary>
    /// Campaigns until leading, runs <paramref name="onStartedLeading"/> with a token cancelled when leadership
    /// ends, and returns when leadership is lost or <paramref name="cancellationToken"/> is cancelled. The lease
    /// is released (if configured) only after <paramref name="onStartedLeading"/> has finished, so the next
    /// leader never overlaps with this one's work.
    /// </summary>
    public async Task RunAsync(Func<CancellationToken, Task> onStartedLeading, Action? onStoppedLeading = null, CancellationToken cancellationToken = default)
    {
        if (!await AcquireAsync(cancellationToken)) return;

        using var leading = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _isLeader = true;
        Log.BecameLeader(_logger, _options.Identity, _options.LeaseNamespace, _options.LeaseName);
        var work = Task.Run(() => onStartedLeading(leading.Token), CancellationToken.None);
        try
        {
            await RenewLoopAsync(work, cancellationToken);
        }
        finally
        {
            await leading.CancelAsync();
            try
            {
                await work;
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e)
            {
                Log.LeadingWorkFailed(_logger, e);
            }
            _isLeader = false;
            if (cancellationToken.IsCancellationRequested && _options.ReleaseOnCancel) await ReleaseAsync();
            Log.StoppedLeading(_logger, _options.Identity);
            onStoppedLeading?.Invoke();
        }
    }

    private async Task<bool> AcquireAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            if (await TryAcquireOrRenewAsync(cancellationToken)) return true;
            try
            {
                await Task.Delay(Jittered(_options.RetryPeriod), _options.TimeProvider, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
        return false;
    }

    private async Task RenewLoopAsync(Task work, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && !work.IsCompleted)
        {
            try
            {
                await Task.WhenAny(Task.Delay(_options.RetryPeriod, _options.TimeProvider, cancellationToken), work);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (cancellationToken.IsCancellationRequested || work.IsCompleted) return;

            // Retry every retryPeriod until renewDeadline; failing that, leadership is lost.
            var deadline = _options.TimeProvider.GetUtcNow() + _options.RenewDeadline;
            var renewed = false;
            while (!cancellationToken.IsCancellationRequested)
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(_options.RenewDeadline);
                if (await TryAcquireOrRenewAsync(attempt.Token))
                {
                    renewed = true;
                    break;
                }
                if (_options.TimeProvider.GetUtcNow() + _options.RetryPeriod > deadline) break;
                try
                {
                    await Task.Delay(_options.RetryPeriod, _options.TimeProvider, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            if (!renewed && !cancellationToken.IsCancellationRequested)
            {
                Log.LostLease(_logger, _options.Identity);
                return;
            }
        }
    }

    internal async Task<bool> TryAcquireOrRenewAsync(CancellationToken cancellationToken)
    {
        var now = _options.TimeProvider.GetUtcNow();
        var durationSeconds = (int)Math.Ceiling(_options.LeaseDuration.TotalSeconds);
        try
        {
            var lease = await _leases.TryGetAsync(_options.LeaseNamespace, _options.LeaseName, cancellationToken);
            if (lease is null)
            {
                var spec = new LeaseSpec
                {
                    HolderIdentity = _options.Identity,
                    LeaseDurationSeconds = durationSeconds,
                    AcquireTime = now,
                    RenewTime = now,
                    LeaseTransitions = 0,
                };
                await _leases.CreateAsync(new Lease { Metadata = new ObjectMetadata { Name = _options.LeaseName, Namespace = _options.LeaseNamespace }, Spec = spec }, _options.LeaseNamespace, cancellationToken);
                Observe(spec, now);
                return true;
            }

            var current = lease.Spec;
            if (_observed is null || !SameRecord(_observed, current)) Observe(current, now);
            var holder = current.HolderIdentity;
            var duration = TimeSpan.FromSeconds(current.LeaseDurationSeconds ?? durationSeconds);
            var iAmHolder = holder == _options.Identity;
            if (!string.IsNullOrEmpty(holder) && !iAmHolder && _observedTime + duration > now) return false;

            lease.Spec = new LeaseSpec
            {
                HolderIdentity = _options.Identity,
                LeaseDurationSeconds = durationSeconds,
                AcquireTime = iAmHolder ? current.AcquireTime ?? now : now,
                RenewTime = now,
                LeaseTransitions = iAmHolder ? current.LeaseTransitions ?? 0 : (current.LeaseTransitions ?? 0) + 1,
            };
            var updated = await _leases.UpdateAsync(lease, cancellationToken);
            Observe(updated.Spec, now);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (Exception e) when (e is KubernetesApiException or HttpRequestException or TimeoutException)
        {
            // Conflicts mean another candidate wrote first; anything else is retried on the next period.
            if (e is not KubernetesConflictException and not KubernetesAlreadyExistsException) Log.LeaseError(_logger, _options.LeaseName, e);
            return false;
        }
    }

    /// <summary>Hands the lease back: empty holder and a 1 s duration, as client-go's ReleaseOnCancel does.</summary>
    private async Task ReleaseAsync()
    {
        using var timeout = new CancellationTokenSource(_options.RenewDeadline);
        try
        {
            var lease = await _leases.TryGetAsync(_options.LeaseNamespace, _options.LeaseName, timeout.Token);
            if (lease is null || lease.Spec.HolderIdentity != _options.Identity) return;
            var now = _options.TimeProvider.GetUtcNow();
            lease.Spec = new LeaseSpec
            {
                HolderIdentity = null,
                LeaseDurationSeconds = 1,
                AcquireTime = now,
                RenewTime = now,
                LeaseTransitions = lease.Spec.LeaseTransitions,
            };
            await _leases.UpdateAsync(lease, timeout.Token);
            Log.Released(_logger, _options.Identity);
        }
        catch (Exception e) when (e is KubernetesApiException or HttpRequestException or TimeoutException or OperationCanceledException)
        {
            Log.LeaseError(_logger, _options.LeaseName, e);
        }
    }

    private void Observe(LeaseSpec spec, DateTimeOffset now)
    {
        _observed = spec;
        _observedTime = now;
        _currentLeader = spec.HolderIdentity;
    }

    private static bool SameRecord(LeaseSpec a, LeaseSpec b) =>
        a.HolderIdentity == b.HolderIdentity && a.LeaseDurationSeconds == b.LeaseDurationSeconds
        && a.AcquireTime == b.AcquireTime && a.RenewTime == b.RenewTime && a.LeaseTransitions == b.LeaseTransitions;

    private static TimeSpan Jittered(TimeSpan d) => d + TimeSpan.FromTicks((long)(d.Ticks * 1.2 * Random.Shared.NextDouble()));

    public void Dispose() => _metric.Dispose();

    private static partial class Log
    {
        [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "{Identity} became leader on lease {Namespace}/{Lease}")]
        public static partial void BecameLeader(ILogger logger, string identity, string @namespace, string lease);

        [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "{Identity} could not renew the lease in time; stepping down")]
        public static partial void LostLease(ILogger logger, string identity);

        [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "{Identity} stopped leading")]
        public static partial void StoppedLeading(ILogger logger, string identity);

        [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "{Identity} released the lease")]
        public static partial void Released(ILogger logger, string identity);

        [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Lease {Lease} request failed")]
        public static partial void LeaseError(ILogger logger, string lease, Exception exception);

        [LoggerMessage(EventId = 405, Level = LogLevel.Error, Message = "Work run while leading failed")]
        public static partial void LeadingWorkFailed(ILogger logger, Exception exception);
    }
}
