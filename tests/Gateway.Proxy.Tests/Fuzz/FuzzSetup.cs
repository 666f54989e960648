using System.Globalization;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>A proxy with the witness in front of its mock upstream, a caller with a large balance and a disabled key.</summary>
public sealed class FuzzSetup : IAsyncDisposable
{
    private FuzzSetup(ProxyHarness harness, UpstreamWitness witness, FuzzRunner runner)
    {
        Harness = harness;
        Witness = witness;
        Runner = runner;
    }

    public ProxyHarness Harness { get; }
    public UpstreamWitness Witness { get; }
    public FuzzRunner Runner { get; }

    public static async Task<FuzzSetup> StartAsync(int bodyLimit, IDictionary<string, string?>? settings = null, Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? configureProxy = null)
    {
        var witness = new UpstreamWitness();
        var config = new Dictionary<string, string?>
        {
            ["TokenGate:Proxy:MaxRequestBodyBytes"] = bodyLimit.ToString(CultureInfo.InvariantCulture),
        };
        if (settings is not null) foreach (var (k, v) in settings) config[k] = v;
        var harness = await ProxyHarness.StartAsync(settings: config, configureMock: witness.Install, configureProxy: configureProxy);
        var caller = await harness.CreateCallerAsync(balance: 1_000_000m);
        var disabled = await harness.CreateCallerAsync(balance: 1_000_000m, key: k => k with { Disabled = true });
        return new FuzzSetup(harness, witness, new FuzzRunner(harness, witness, caller, disabled, bodyLimit));
    }

    public ValueTask DisposeAsync()
    {
        Runner.Dispose();
        return Harness.DisposeAsync();
    }
}
