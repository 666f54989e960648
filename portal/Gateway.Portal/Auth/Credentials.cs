using System.Security.Cryptography;
using System.Text;
using Gateway.Core.Storage;
using Gateway.Core.Totp;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;

namespace Gateway.Portal.Auth;

/// <summary>
/// Password hashing (ASP.NET Identity's PBKDF2 <see cref="PasswordHasher{TUser}"/>), TOTP secret protection
/// (data protection; keys shared by replicas through PostgreSQL) and recovery codes (salted SHA-256: each
/// code carries 80 random bits, so a slow hash is not needed and checking ten stays cheap).
/// </summary>
public sealed class Credentials(IDataProtectionProvider dataProtection)
{
    public const int RecoveryCodeCount = 10;
    private const string RecoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789";

    private readonly PasswordHasher<UserRow> _hasher = new();
    private readonly IDataProtector _totp = dataProtection.CreateProtector("TokenGate.Portal.TotpSecret.v1");
    private static readonly UserRow s_nobody = new();
    // Verified against when the login is unknown, so the answer takes as long as for a real user.
    private static readonly Lazy<string> s_dummyHash = new(() => new PasswordHasher<UserRow>().HashPassword(s_nobody, "no-such-user-" + Guid.NewGuid()));

    public string HashPassword(string password) => _hasher.HashPassword(s_nobody, password);

    /// <summary>Verifies a password; <paramref name="rehash"/> is a fresh hash when the stored one uses old parameters.</summary>
    public bool VerifyPassword(string? storedHash, string password, out string? rehash)
    {
        rehash = null;
        if (string.IsNullOrEmpty(storedHash))
        {
            _hasher.VerifyHashedPassword(s_nobody, s_dummyHash.Value, password);
            return false;
        }
        var result = _hasher.VerifyHashedPassword(s_nobody, storedHash, password);
        if (result == PasswordVerificationResult.SuccessRehashNeeded) rehash = HashPassword(password);
        return result != PasswordVerificationResult.Failed;
    }

    /// <summary>Spends the time of one verification without a user (unknown login).</summary>
    public void VerifyNobody(string password) => _hasher.VerifyHashedPassword(s_nobody, s_dummyHash.Value, password);

    public string ProtectTotpSecret(string base32Secret) => _totp.Protect(base32Secret);

    public byte[] UnprotectTotpSecret(string protectedSecret) => Base32.Decode(_totp.Unprotect(protectedSecret));

    /// <summary>Ten fresh codes like <c>k3vq-8xmn-2pdr-7hta</c> (16 characters from 31: ~79 bits).</summary>
    public static IReadOnlyList<string> NewRecoveryCodes()
    {
        var codes = new List<string>(RecoveryCodeCount);
        for (var i = 0; i < RecoveryCodeCount; i++)
        {
            var chars = new char[19];
            for (var j = 0; j < chars.Length; j++)
            {
                chars[j] = j % 5 == 4 ? '-' : RecoveryAlphabet[RandomNumberGenerator.GetInt32(RecoveryAlphabet.Length)];
            }
            codes.Add(new string(chars));
        }
        return codes;
    }

    /// <summary>The stored form of a recovery code: SHA-256 over the user id and the normalised code.</summary>
    public static string HashRecoveryCode(Guid userId, string code)
    {
        ArgumentNullException.ThrowIfNull(code);
        var normal = new StringBuilder(code.Length);
        foreach (var c in code)
        {
            if (char.IsAsciiLetterOrDigit(c)) normal.Append(char.ToLowerInvariant(c));
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(userId.ToString("N") + ":" + normal)));
    }

    /// <summary>True when the text looks like a recovery code rather than a TOTP code.</summary>
    public static bool LooksLikeRecoveryCode(string code)
    {
        var n = 0;
        foreach (var c in code)
        {
            if (char.IsAsciiLetterOrDigit(c)) n++;
        }
        return n == 16;
    }
}
