namespace Gateway.Operator.Accounts;

/// <summary>Files found to hold the same account: the newest is kept, the others are dropped.</summary>
public sealed record AccountMerge(ImportedAccount Kept, IReadOnlyList<ImportedAccount> Dropped)
{
    public override string ToString()
    {
        var expires = Kept.Expired is { } e ? "expires " + ImportedAccount.Rfc3339(e)
            : Kept.LastRefresh is { } r ? "refreshed " + ImportedAccount.Rfc3339(r) : "no expiry recorded";
        return $"merged {string.Join(", ", Dropped.Select(d => d.SourceFile))} into {Kept.SourceFile}: same {Kept.Type} account {Kept.Identity}; kept the newest ({expires}).";
    }
}

/// <summary>
/// Merges files of the same account: within one type, files sharing an account id or an e-mail address (case
/// aside) are one account, transitively. The newest copy wins: latest <c>expired</c>, then latest
/// <c>last_refresh</c>, then the first file name in ordinal order (so the result does not depend on disk order).
/// </summary>
public static class AccountDeduplicator
{
    public static (IReadOnlyList<ImportedAccount> Accounts, IReadOnlyList<AccountMerge> Merges) Merge(IReadOnlyList<ImportedAccount> accounts)
    {
        ArgumentNullException.ThrowIfNull(accounts);
        var parent = Enumerable.Range(0, accounts.Count).ToArray();
        var firstByKey = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < accounts.Count; i++)
        {
            foreach (var key in Keys(accounts[i]))
            {
                if (firstByKey.TryGetValue(key, out var j)) Union(parent, i, j);
                else firstByKey[key] = i;
            }
        }

        var kept = new List<ImportedAccount>();
        var merges = new List<AccountMerge>();
        foreach (var group in Enumerable.Range(0, accounts.Count).GroupBy(i => Find(parent, i)))
        {
            var ordered = group.Select(i => accounts[i]).OrderBy(a => a, Newest).ToList();
            kept.Add(ordered[0]);
            if (ordered.Count > 1) merges.Add(new AccountMerge(ordered[0], ordered[1..]));
        }
        return (kept, merges);
    }

    private static IEnumerable<string> Keys(ImportedAccount a)
    {
        if (a.AccountId is { Length: > 0 } id) yield return a.Type + "\nid\n" + id;
        if (a.Email is { Length: > 0 } email) yield return a.Type + "\nemail\n" + email.ToLowerInvariant();
    }

    private static readonly Comparer<ImportedAccount> Newest = Comparer<ImportedAccount>.Create((x, y) =>
    {
        var c = Nullable.Compare(y.Expired, x.Expired);
        if (c != 0) return c;
        c = Nullable.Compare(y.LastRefresh, x.LastRefresh);
        return c != 0 ? c : string.CompareOrdinal(x.SourceFile, y.SourceFile);
    });

    private static int Find(int[] parent, int i)
    {
        while (parent[i] != i) i = parent[i] = parent[parent[i]];
        return i;
    }

    private static void Union(int[] parent, int a, int b)
    {
        var (ra, rb) = (Find(parent, a), Find(parent, b));
        if (ra != rb) parent[Math.Max(ra, rb)] = Math.Min(ra, rb);
    }
}
