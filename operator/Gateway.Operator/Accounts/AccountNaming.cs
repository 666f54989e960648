using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Operator.Accounts;

/// <summary>
/// Object names for imported accounts: <c>&lt;type&gt;-&lt;e-mail or account id&gt;</c> made DNS-1123 safe
/// (lower case, runs of other characters turned into one '-'), at most <see cref="MaxLength"/> characters so the
/// Secret's name (<c>&lt;name&gt;-auth</c>) and label values stay within 63. Long or clashing names get a short
/// hash of the identity, so a name is stable across runs and distinct accounts never share one.
/// </summary>
public static class AccountNaming
{
    public const int MaxLength = 58;
    public const string SecretSuffix = "-auth";

    public static string SecretName(string accountName) => accountName + SecretSuffix;

    /// <summary>The readable name, before clash handling.</summary>
    public static string Name(string type, string identity)
    {
        var name = Sanitize(type + "-" + identity);
        if (name.Length == 0 || !char.IsAsciiLetterLower(name[0])) name = "account-" + name;
        return name.Length <= MaxLength ? name.TrimEnd('-') : WithHash(name, type, identity);
    }

    /// <summary>The name with a hash suffix, used when two accounts would otherwise share a name.</summary>
    public static string Distinct(string type, string identity) => WithHash(Name(type, identity), type, identity);

    private static string WithHash(string name, string type, string identity)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(type + "\n" + identity)))[..8];
        var head = name.Length > MaxLength - 9 ? name[..(MaxLength - 9)] : name;
        return head.TrimEnd('-') + "-" + hash;
    }

    private static string Sanitize(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s.ToLower(CultureInfo.InvariantCulture))
        {
            if (char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c)) sb.Append(c);
            else if (sb.Length > 0 && sb[^1] != '-') sb.Append('-');
        }
        return sb.ToString().Trim('-');
    }
}
