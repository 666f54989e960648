using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Logging;

namespace Gateway.Core.Hosting;

/// <summary>
/// Log levels an SRE can live with in every environment, and JSON console logs for log collectors.
/// The levels are the lowest-precedence configuration: appsettings, environment variables
/// (<c>Logging__LogLevel__Microsoft.EntityFrameworkCore=Information</c>) and arguments override them.
/// <c>TokenGate:LogFormat</c> (env <c>TokenGate__LogFormat</c>) is <c>text</c> (default) or <c>json</c>: one JSON
/// object per line with an ISO 8601 UTC timestamp, level, category, event id, message and its parameters.
/// </summary>
public static class LoggingDefaults
{
    public const string LogFormatKey = "TokenGate:LogFormat";

    /// <summary>The default levels: framework chatter (per-request hosting logs, every EF Core command) at Warning.</summary>
    public static readonly IReadOnlyDictionary<string, string?> Levels = new Dictionary<string, string?>(StringComparer.Ordinal)
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft"] = "Warning",
        ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:Microsoft.EntityFrameworkCore"] = "Warning",
        ["Logging:LogLevel:System.Net.Http.HttpClient"] = "Warning",
        ["Logging:LogLevel:Npgsql"] = "Warning",
    };

    public static void Configure(WebApplicationBuilder builder, ConfigurationProblems problems, IReadOnlyDictionary<string, string?>? processDefaults = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(problems);
        var defaults = new Dictionary<string, string?>(Levels, StringComparer.Ordinal);
        if (processDefaults is not null) foreach (var (k, v) in processDefaults) defaults[k] = v;
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = defaults });

        var format = builder.Configuration[LogFormatKey];
        if (string.IsNullOrWhiteSpace(format) || string.Equals(format, "text", StringComparison.OrdinalIgnoreCase)) return;
        if (!string.Equals(format, "json", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"{LogFormatKey} must be 'text' or 'json' (was '{format}').");
            return;
        }
        builder.Logging.ClearProviders();
        builder.Logging.AddJsonConsole(o =>
        {
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
            o.IncludeScopes = false;
            o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
        });
        builder.Configuration["Logging:Console:FormatterName"] = "json";
    }
}
