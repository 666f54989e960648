namespace Gateway.Operator.Verify;

/// <summary>Violations of one attempt: every one counted per kind, the first ones of each kind kept for the report.</summary>
internal sealed class ViolationList
{
    private readonly List<Violation> _all = [];
    private readonly Dictionary<string, long> _counted = new(StringComparer.Ordinal);

    public void Add(Violation v) => _all.Add(v);

    /// <summary>Violations SQL found: their total may exceed what was listed.</summary>
    public void AddCounted(ViolationRows rows)
    {
        if (rows.Total == 0) return;
        _all.AddRange(rows.Listed);
        _counted[rows.Kind] = _counted.GetValueOrDefault(rows.Kind) + rows.Total - rows.Listed.Count;
    }

    public bool Any(Func<Violation, bool> predicate) => _all.Any(predicate);

    public VerifyReport ToReport(DateTimeOffset at, int attempts, VerifyCounts counts, int maxListed)
    {
        var totals = new SortedDictionary<string, long>(_counted, StringComparer.Ordinal);
        foreach (var v in _all) totals[v.Kind] = totals.GetValueOrDefault(v.Kind) + 1;
        var listed = _all.GroupBy(v => v.Kind, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .SelectMany(g => g.Take(maxListed)).ToList();
        return new VerifyReport { CheckedAt = at, Attempts = attempts, Counts = counts, Violations = listed, ViolationCounts = totals };
    }
}
