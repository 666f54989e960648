using Gateway.Core.Hosting;

namespace Gateway.Proxy;

/// <summary>Process entry point.</summary>
public static class Program
{
    public static Task<int> Main(string[] args)
    {
        // Run socket completions on the socket engine's threads instead of queueing each one to the
        // thread pool. Every request waits on four socket events (client request, admission reply,
        // upstream response, settlement reply) and on a small machine each thread-pool hand-off is a
        // futex wake and a context switch: this halves the proxy's context switches per request. Safe
        // because nothing on the proxy's request path blocks a thread. Read by .NET once, at the first
        // socket operation, so it is set here before the host starts; set the variable to 0 to opt out.
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
        return ProcessHost.RunAsync("proxy", () => ProxyApp.Build(args));
    }

    private const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
}
