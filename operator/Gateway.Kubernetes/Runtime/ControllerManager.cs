using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Kubernetes.Runtime;

/// <summary>
/// Runs informers all the time (so a standby replica has a warm cache) and controllers only while this
/// replica leads (or always, without leader election). When leadership is lost the controllers stop and the
/// manager campaigns again; on shutdown controllers finish their in-flight reconciles before the lease is
/// released.
/// </summary>
public sealed partial class ControllerManager
{
    private readonly KubernetesClient _client;
    private readonly LeaderElectionOptions? _leaderElection;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly List<IInformer> _informers = [];
    private readonly List<IController> _controllers = [];
    private LeaderElector? _elector;

    public ControllerManager(KubernetesClient client, LeaderElectionOptions? leaderElection = null, ILoggerFactory? loggerFactory = null)
    {
        _client = client;
        _leaderElection = leaderElection;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger("Gateway.Kubernetes.Manager");
    }

    public KubernetesClient Client => _client;

    /// <summary>True while controllers run (always true without leader election once started).</summary>
    public bool IsLeader => _leaderElection is null ? _running : _elector?.IsLeader == true;

    private volatile bool _running;

    public ControllerManager Add(IInformer informer)
    {
        _informers.Add(informer);
        return this;
    }

    public ControllerManager Add(IController controller)
    {
        _controllers.Add(controller);
        return this;
    }

    /// <summary>Creates, registers and returns an informer for a resource.</summary>
    public Informer<T> Informer<T>(ResourceClient<T> resource, InformerOptions? options = null) where T : class
    {
        var informer = new Informer<T>(resource, options, _loggerFactory);
        _informers.Add(informer);
        return informer;
    }

    /// <summary>True when every informer has listed once (readiness).</summary>
    public bool HasSynced => _informers.All(i => i.HasSynced);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var informerTasks = _informers.Select(i => Task.Run(() => i.RunAsync(cancellationToken), CancellationToken.None)).ToArray();
        try
        {
            if (_leaderElection is null)
            {
                // A single replica without election leads whenever it runs.
                using var leaderMetric = OperatorMetrics.RegisterElector(() => _running);
                await RunControllersAsync(cancellationToken);
            }
            else
            {
                using var elector = new LeaderElector(_client, _leaderElection, _loggerFactory);
                _elector = elector;
                while (!cancellationToken.IsCancellationRequested)
                {
                    await elector.RunAsync(RunControllersAsync, cancellationToken: cancellationToken);
                    if (cancellationToken.IsCancellationRequested) break;
                    Log.Recampaign(_logger, _leaderElection.Identity);
                    try
                    {
                        // Don't hammer the API server if leading keeps failing.
                        await Task.Delay(_leaderElection.RetryPeriod, _leaderElection.TimeProvider, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            }
        }
        finally
        {
            await Task.WhenAll(informerTasks);
        }
    }

    private async Task RunControllersAsync(CancellationToken cancellationToken)
    {
        _running = true;
        try
        {
            await Task.WhenAll(_controllers.Select(c => Task.Run(async () =>
            {
                try
                {
                    await c.RunAsync(cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                }
            }, CancellationToken.None)));
            // Controllers that return on their own (or none at all) still hold leadership until asked to stop.
            await Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
        finally
        {
            _running = false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 500, Level = LogLevel.Warning, Message = "{Identity} lost leadership; controllers stopped, campaigning again")]
        public static partial void Recampaign(ILogger logger, string identity);
    }
}
