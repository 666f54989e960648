namespace Gateway.Core.Hosting;

/// <summary>
/// Collects what is wrong with a process's configuration, one message per missing or wrong setting, so that
/// a misconfigured pod reports every problem at once instead of the first one per restart.
/// </summary>
public sealed class ConfigurationProblems
{
    private readonly List<string> _messages = [];

    public IReadOnlyList<string> Messages => _messages;

    public bool Any => _messages.Count > 0;

    /// <summary>Adds one problem; <paramref name="message"/> names the setting and says what is expected.</summary>
    public void Add(string message) => _messages.Add(message);

    public void AddRange(IEnumerable<string> messages) => _messages.AddRange(messages);

    /// <summary>Runs <paramref name="parse"/>, recording the message of the exceptions it is expected to throw.</summary>
    public T? Try<T>(Func<T> parse, Func<Exception, string>? describe = null)
    {
        ArgumentNullException.ThrowIfNull(parse);
        try { return parse(); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            _messages.Add(describe is null ? e.Message : describe(e));
            return default;
        }
    }

    /// <summary>Throws <see cref="InvalidConfigurationException"/> listing every problem, if there is any.</summary>
    public void ThrowIfAny(string process)
    {
        if (_messages.Count > 0) throw new InvalidConfigurationException(process, _messages);
    }
}

/// <summary>The configuration of a process is invalid; <see cref="Problems"/> has one message per setting.</summary>
public sealed class InvalidConfigurationException : InvalidOperationException
{
    public InvalidConfigurationException(string process, IReadOnlyList<string> problems)
        : base($"The {process} configuration is invalid:{Environment.NewLine} - " + string.Join(Environment.NewLine + " - ", problems))
    {
        Process = process;
        Problems = [.. problems];
    }

    public string Process { get; }

    public IReadOnlyList<string> Problems { get; }
}
