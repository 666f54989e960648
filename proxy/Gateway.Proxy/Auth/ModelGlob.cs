namespace Gateway.Proxy.Auth;

/// <summary>Model allow-lists: globs with '*' (any run) and '?' (one character); an empty list allows all.</summary>
public static class ModelGlob
{
    public static bool Allowed(List<string>? patterns, string model)
    {
        if (patterns is null || patterns.Count == 0) return true;
        foreach (var p in patterns)
        {
            if (IsMatch(p, model)) return true;
        }
        return false;
    }

    /// <summary>Iterative glob match with single-star backtracking: linear for typical patterns, no allocation.</summary>
    public static bool IsMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t])) { p++; t++; }
            else if (p < pattern.Length && pattern[p] == '*') { star = p++; mark = t; }
            else if (star >= 0) { p = star + 1; t = ++mark; }
            else return false;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }
}
