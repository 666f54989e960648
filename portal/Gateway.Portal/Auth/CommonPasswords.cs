using System.Collections.Frozen;

namespace Gateway.Portal.Auth;

/// <summary>The shipped list of common passwords (Auth/common-passwords.txt, embedded), compared case-insensitively.</summary>
public static class CommonPasswords
{
    private static readonly Lazy<FrozenSet<string>> s_list = new(Load);

    public static int Count => s_list.Value.Count;

    /// <summary>
    /// True when the password is on the list, also after undoing common letter substitutions (p@ssw0rd) in
    /// its leading part, or when that leading part is a listed word followed only by digits and symbols.
    /// </summary>
    public static bool Contains(string password)
    {
        ArgumentNullException.ThrowIfNull(password);
        var list = s_list.Value;
        var lower = password.ToLowerInvariant();
        if (list.Contains(lower)) return true;
        var end = lower.Length;
        while (end > 0 && !char.IsAsciiLetter(lower[end - 1])) end--;
        var core = Unleet(lower[..end]);
        var tail = lower[end..];
        return list.Contains(core + tail) || (core.Length >= 6 && list.Contains(core));
    }

    private static string Unleet(string s) => string.Create(s.Length, s, static (span, src) =>
    {
        for (var i = 0; i < src.Length; i++)
        {
            span[i] = src[i] switch
            {
                '@' or '4' => 'a',
                '0' => 'o',
                '3' => 'e',
                '$' or '5' => 's',
                '7' => 't',
                _ => src[i],
            };
        }
    });

    private static FrozenSet<string> Load()
    {
        using var stream = typeof(CommonPasswords).Assembly.GetManifestResourceStream("Gateway.Portal.Auth.common-passwords.txt")
            ?? throw new InvalidOperationException("The embedded common-passwords list is missing from the portal assembly.");
        using var reader = new StreamReader(stream);
        var set = new HashSet<string>(StringComparer.Ordinal);
        while (reader.ReadLine() is { } line)
        {
            var l = line.Trim();
            if (l.Length == 0 || l[0] == '#') continue;
            set.Add(l.ToLowerInvariant());
        }
        return set.ToFrozenSet(StringComparer.Ordinal);
    }
}
