using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Gateway.Portal.Tests.Infrastructure;

/// <summary>Keeps every formatted log line (with its exception) so tests can scan them for secrets.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = $"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)}";
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
            {
                // Structured values too: a sink could write them even where the message template does not.
                line += " {" + string.Join(", ", values.Select(v => v.Key + "=" + v.Value)) + "}";
            }
            if (exception is not null) line += " " + exception;
            lines.Enqueue(line);
        }
    }
}
