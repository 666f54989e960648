using System.Globalization;
using System.Text.RegularExpressions;
using Gateway.Core.Resources;

namespace Gateway.Operator.Accounts;

/// <summary>The parsed command line of <c>import-accounts</c>.</summary>
public sealed partial record ImportAccountsOptions
{
    public IReadOnlyList<string> Inputs { get; init; } = [];
    public string? OutDir { get; init; }
    public bool ShowTokens { get; init; }
    public bool SkipInvalid { get; init; }
    public bool Help { get; init; }
    public ImportSettings Settings { get; init; } = new();

    /// <summary>Parses the arguments after the command name; the error says what is wrong with which option.</summary>
    public static (ImportAccountsOptions? Options, string? Error) Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var inputs = new List<string>();
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        var o = new ImportAccountsOptions();
        var s = new ImportSettings();
        var onlyInputs = false;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (onlyInputs || !arg.StartsWith('-') || arg == "-")
            {
                inputs.Add(arg);
                continue;
            }
            string? inline = null;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0) (arg, inline) = (arg[..eq], arg[(eq + 1)..]);
            switch (arg)
            {
                case "--": onlyInputs = true; continue;
                case "-h" or "--help": o = o with { Help = true }; continue;
                case "--show-tokens": o = o with { ShowTokens = true }; continue;
                case "--skip-invalid": o = o with { SkipInvalid = true }; continue;
            }
            if (!ValueOptions.Contains(arg)) return (null, $"unknown option '{arg}'.");
            var value = inline ?? (i + 1 < args.Count ? args[++i] : null);
            if (value is null) return (null, $"option {arg} needs a value.");
            switch (arg)
            {
                case "-o" or "--out": o = o with { OutDir = value }; break;
                case "-n" or "--namespace":
                    if (!DnsLabel().IsMatch(value)) return (null, $"--namespace '{value}' is not a valid namespace name (lower-case letters, digits and '-', at most 63).");
                    s = s with { Namespace = value };
                    break;
                case "--type": s = s with { DefaultType = value }; break;
                case "--provider":
                    if (Array.IndexOf(Providers.All, value) < 0) return (null, $"--provider '{value}' is not one of {string.Join(", ", Providers.All)}.");
                    s = s with { Provider = value };
                    break;
                case "--base-url" or "--token-url":
                    if (!Uri.TryCreate(value, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")) return (null, $"{arg} '{value}' is not an absolute http(s) URL.");
                    s = arg == "--base-url" ? s with { BaseUrl = value } : s with { TokenUrl = value };
                    break;
                case "--client-id":
                    if (string.IsNullOrWhiteSpace(value)) return (null, "--client-id must not be empty.");
                    s = s with { ClientId = value };
                    break;
                case "--models":
                    var models = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    if (models.Length == 0) return (null, "--models needs at least one model name (comma-separated).");
                    s = s with { Models = models.Distinct(StringComparer.Ordinal).ToList() };
                    break;
                case "--priority" or "--weight":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || (arg == "--weight" && n < 1))
                        return (null, $"{arg} '{value}' must be a whole number{(arg == "--weight" ? " of at least 1" : " of at least 0")}.");
                    s = arg == "--priority" ? s with { Priority = n } : s with { Weight = n };
                    break;
                case "--label":
                    var kv = value.Split('=', 2);
                    if (kv.Length != 2 || !LabelKey().IsMatch(kv[0]) || !LabelValue().IsMatch(kv[1]))
                        return (null, $"--label '{value}' is not KEY=VALUE with a valid Kubernetes label key and value.");
                    labels[kv[0]] = kv[1];
                    break;
                default:
                    return (null, $"unknown option '{arg}'.");
            }
        }
        if (!o.Help && inputs.Count == 0) return (null, "name at least one auth file or directory of auth files.");
        return (o with { Inputs = inputs, Settings = s with { Labels = labels } }, null);
    }

    private static readonly HashSet<string> ValueOptions = new(StringComparer.Ordinal)
    {
        "-o", "--out", "-n", "--namespace", "--type", "--provider", "--base-url", "--token-url", "--client-id", "--models", "--priority", "--weight", "--label",
    };

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    [GeneratedRegex(@"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex LabelKey();

    [GeneratedRegex("^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")]
    private static partial Regex LabelValue();
}
