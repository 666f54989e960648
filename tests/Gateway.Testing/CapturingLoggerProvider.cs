using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Gateway.Testing;

/// <summary>Keeps every formatted log line (with its structured values and exception) so a test can scan them for secrets.</summary>
public sealed class CapturingLoggerProvider(string component = "") : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public string Component { get; } = component;

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        // Scopes are not captured: every sink the hosts configure writes them off (LoggingDefaults sets
        // IncludeScopes = false), and ASP.NET Core's request scope carries the path, which for an invite link
        // holds its token. Turning scopes on in a sink would need a redaction first.
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = $"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)}";
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
            {
                line += " {" + string.Join(", ", values.Select(v => v.Key + "=" + v.Value)) + "}";
            }
            if (exception is not null) line += " " + exception;
            lines.Enqueue(line);
        }
    }
}
