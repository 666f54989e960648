using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Hosting;

/// <summary>
/// Runs a process's host and turns configuration errors into a short report on stderr and exit code 2,
/// one line per problem, instead of an unhandled-exception stack trace.
/// </summary>
public static class ProcessHost
{
    /// <summary>Exit code of a process that refused to start because of its configuration.</summary>
    public const int ConfigurationErrorExitCode = 2;

    public static async Task<int> RunAsync(string process, Func<WebApplication> build)
    {
        ArgumentNullException.ThrowIfNull(build);
        try
        {
            var app = build();
            await using (app.ConfigureAwait(false))
            {
                await app.RunAsync().ConfigureAwait(false);
            }
            return 0;
        }
        catch (Exception e) when (Problems(e) is { Count: > 0 } problems)
        {
            await Console.Error.WriteLineAsync($"tokengate {process}: invalid configuration ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}). "
                + "Settings are configuration keys; as environment variables write ':' as '__' (TokenGate:Proxy:MaxAttempts is TokenGate__Proxy__MaxAttempts).").ConfigureAwait(false);
            foreach (var p in problems) await Console.Error.WriteLineAsync("  - " + p).ConfigureAwait(false);
            return ConfigurationErrorExitCode;
        }
    }

    /// <summary>The configuration problems an exception stands for: ours, options validation (ValidateOnStart), or both aggregated.</summary>
    public static IReadOnlyList<string> Problems(Exception e) => e switch
    {
        InvalidConfigurationException c => c.Problems,
        OptionsValidationException o => [.. o.Failures],
        AggregateException a when a.InnerExceptions.All(i => Problems(i).Count > 0) => [.. a.InnerExceptions.SelectMany(Problems)],
        _ => [],
    };
}
