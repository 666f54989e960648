using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Core.Usage;

namespace Gateway.Core.Pricing;

/// <summary>A model's resolved price and the version it came from.</summary>
public sealed record ResolvedPrice(ModelPrice Price, string Version);

/// <summary>
/// Versioned price table from <c>config/prices/*.json</c>: prices in USD per 1M tokens by kind.
/// The file with the greatest version is current. Model keys may end in '*' to match a prefix.
/// </summary>
public sealed class PriceTable
{
    private readonly Dictionary<string, ModelPrice> _exact;
    private readonly List<(string Prefix, ModelPrice Price)> _prefixes;

    public PriceTable(string version, IReadOnlyDictionary<string, ModelPrice> models)
    {
        Version = version;
        _exact = new(StringComparer.Ordinal);
        _prefixes = [];
        foreach (var (name, price) in models)
        {
            if (name.EndsWith('*')) _prefixes.Add((name[..^1], price));
            else _exact[name] = price;
        }
        _prefixes.Sort((a, b) => b.Prefix.Length.CompareTo(a.Prefix.Length));
    }

    public string Version { get; }

    /// <summary>Price for a model: exact name, else the longest matching prefix, else null.</summary>
    public ModelPrice? Find(string model)
    {
        if (_exact.TryGetValue(model, out var p)) return p;
        foreach (var (prefix, price) in _prefixes)
        {
            if (model.StartsWith(prefix, StringComparison.Ordinal)) return price;
        }
        return null;
    }

    /// <summary>Loads the newest table from a directory of JSON files.</summary>
    public static PriceTable LoadLatest(string directory)
    {
        if (!Directory.Exists(directory)) throw new InvalidOperationException($"Price directory '{directory}' does not exist. Set TokenGate:PricesDirectory.");
        PriceTable? best = null;
        foreach (var file in Directory.EnumerateFiles(directory, "*.json"))
        {
            var t = Load(file);
            if (best is null || string.CompareOrdinal(t.Version, best.Version) > 0) best = t;
        }
        return best ?? throw new InvalidOperationException($"No price table (*.json) in '{directory}'.");
    }

    public static PriceTable Load(string file)
    {
        using var s = File.OpenRead(file);
        var doc = JsonSerializer.Deserialize<PriceFile>(s, TokenGateJson.Options)
            ?? throw new InvalidOperationException($"Price file '{file}' is empty.");
        if (string.IsNullOrWhiteSpace(doc.Version)) throw new InvalidOperationException($"Price file '{file}' has no version.");
        return new PriceTable(doc.Version, doc.Models ?? []);
    }

    private sealed class PriceFile
    {
        public string Version { get; set; } = "";
        public Dictionary<string, ModelPrice>? Models { get; set; }
    }
}

/// <summary>cost = Σ tokens_kind × price_kind / 1M × user discount × key discount, rounded to 8 decimals.</summary>
public static class CostCalculator
{
    public static decimal Compute(TokenCounts tokens, ModelPrice price, decimal? userDiscount, decimal? keyDiscount)
    {
        var raw = tokens.Input * price.Input
                  + tokens.CachedInput * (price.CachedInput ?? price.Input)
                  + tokens.CacheWrite * (price.CacheWrite ?? price.Input)
                  + tokens.Output * price.Output;
        var cost = raw / 1_000_000m * (userDiscount ?? 1m) * (keyDiscount ?? 1m);
        return Money.RoundUsd(cost);
    }
}
