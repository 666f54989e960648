using System.Security.Cryptography;

namespace Gateway.Core.Totp;

/// <summary>HMAC algorithms RFC 6238 allows.</summary>
public enum TotpAlgorithm
{
    Sha1,
    Sha256,
    Sha512,
}

/// <summary>Code parameters shared by the generator, the verifier and the otpauth URI.</summary>
public sealed record TotpParameters
{
    /// <summary>The parameters every authenticator app supports: SHA1, 6 digits, 30 seconds.</summary>
    public static readonly TotpParameters Default = new();

    public TotpAlgorithm Algorithm { get; init; } = TotpAlgorithm.Sha1;

    /// <summary>6 or 8.</summary>
    public int Digits { get; init; } = 6;

    /// <summary>Time step in seconds (X in RFC 6238).</summary>
    public int PeriodSeconds { get; init; } = 30;

    internal void Validate()
    {
        if (Digits is not (6 or 8)) throw new ArgumentOutOfRangeException(nameof(Digits), Digits, "TOTP codes have 6 or 8 digits.");
        if (PeriodSeconds < 1) throw new ArgumentOutOfRangeException(nameof(PeriodSeconds), PeriodSeconds, "The TOTP period must be at least one second.");
        if (!Enum.IsDefined(Algorithm)) throw new ArgumentOutOfRangeException(nameof(Algorithm), Algorithm, "Unknown TOTP algorithm.");
    }
}

/// <summary>Outcome of a TOTP verification.</summary>
/// <param name="Success">True when the code matched a step inside the window that is newer than the last accepted one.</param>
/// <param name="TimeStep">The matched time step; store it and pass it back as lastAcceptedStep to reject replays.</param>
public readonly record struct TotpVerification(bool Success, long TimeStep)
{
    public static readonly TotpVerification Failed = new(false, -1);
}

/// <summary>HOTP (RFC 4226): the HMAC-based one-time password under TOTP.</summary>
public static class Hotp
{
    private static readonly int[] s_powers = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

    /// <summary>The code for <paramref name="counter"/> as a number (format it zero-padded to <paramref name="digits"/>).</summary>
    public static int ComputeValue(ReadOnlySpan<byte> secret, long counter, int digits, TotpAlgorithm algorithm)
    {
        if (digits is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(digits), digits, "HOTP codes have 1 to 8 digits.");
        Span<byte> message = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(message, counter);
        Span<byte> mac = stackalloc byte[64];
        var n = algorithm switch
        {
            TotpAlgorithm.Sha1 => HMACSHA1.HashData(secret, message, mac),
            TotpAlgorithm.Sha256 => HMACSHA256.HashData(secret, message, mac),
            TotpAlgorithm.Sha512 => HMACSHA512.HashData(secret, message, mac),
            _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "Unknown TOTP algorithm."),
        };
        // Dynamic truncation (RFC 4226 section 5.3): the low nibble of the last byte picks the offset.
        var offset = mac[n - 1] & 0x0f;
        var binary = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
        CryptographicOperations.ZeroMemory(mac);
        return binary % s_powers[digits];
    }

    /// <summary>The zero-padded code for <paramref name="counter"/>.</summary>
    public static string Compute(ReadOnlySpan<byte> secret, long counter, int digits = 6, TotpAlgorithm algorithm = TotpAlgorithm.Sha1) =>
        ComputeValue(secret, counter, digits, algorithm).ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(digits, '0');
}

/// <summary>
/// TOTP (RFC 6238) codes and verification. Time comes from a <see cref="TimeProvider"/> so tests and
/// callers control it. Verification accepts the previous, current and next step (clock skew of ±1
/// step), compares in constant time and reports the matched step for replay protection.
/// </summary>
public sealed class TotpService
{
    /// <summary>160 bits, the secret size RFC 4226 recommends for SHA1.</summary>
    public const int SecretBytes = 20;

    private readonly TimeProvider _time;
    private readonly TotpParameters _parameters;

    public TotpService(TimeProvider time, TotpParameters? parameters = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _parameters = parameters ?? TotpParameters.Default;
        _parameters.Validate();
    }

    public TotpParameters Parameters => _parameters;

    /// <summary>A fresh random secret of <see cref="SecretBytes"/> bytes from the CSPRNG.</summary>
    public static byte[] GenerateSecret() => RandomNumberGenerator.GetBytes(SecretBytes);

    /// <summary>A fresh random secret, base32-encoded without padding (what goes into the otpauth URI).</summary>
    public static string GenerateBase32Secret() => Base32.Encode(GenerateSecret());

    /// <summary>The time step (T in RFC 6238, T0 = 0) containing <paramref name="time"/>.</summary>
    public long GetTimeStep(DateTimeOffset time) => Math.DivRem(time.ToUnixTimeSeconds(), _parameters.PeriodSeconds, out var rem) - (rem < 0 ? 1 : 0);

    /// <summary>The current time step.</summary>
    public long CurrentTimeStep() => GetTimeStep(_time.GetUtcNow());

    /// <summary>The code at <paramref name="time"/>.</summary>
    public string ComputeCode(ReadOnlySpan<byte> secret, DateTimeOffset time) => ComputeCodeForStep(secret, GetTimeStep(time));

    /// <summary>The code now.</summary>
    public string ComputeCode(ReadOnlySpan<byte> secret) => ComputeCode(secret, _time.GetUtcNow());

    /// <summary>The code for a time step.</summary>
    public string ComputeCodeForStep(ReadOnlySpan<byte> secret, long timeStep) =>
        Hotp.Compute(secret, timeStep, _parameters.Digits, _parameters.Algorithm);

    /// <summary>
    /// Checks <paramref name="code"/> against the steps now−1, now and now+1. Every candidate is computed
    /// and compared in constant time, so timing does not tell which step (if any) matched. Steps at or
    /// before <paramref name="lastAcceptedStep"/> are refused, so a code can be used once.
    /// </summary>
    public TotpVerification Verify(ReadOnlySpan<byte> secret, ReadOnlySpan<char> code, long? lastAcceptedStep = null)
    {
        code = code.Trim();
        Span<byte> given = stackalloc byte[8];
        var wellFormed = code.Length == _parameters.Digits;
        for (var i = 0; i < given.Length; i++)
        {
            var c = i < code.Length ? code[i] : '0';
            wellFormed &= c is >= '0' and <= '9';
            given[i] = (byte)c;
        }
        if (!wellFormed) return TotpVerification.Failed;

        var now = CurrentTimeStep();
        Span<byte> expected = stackalloc byte[8];
        var matched = -1L;
        for (var step = now - 1; step <= now + 1; step++)
        {
            var value = Hotp.ComputeValue(secret, step, _parameters.Digits, _parameters.Algorithm);
            for (var i = _parameters.Digits - 1; i >= 0; i--)
            {
                expected[i] = (byte)('0' + value % 10);
                value /= 10;
            }
            var equal = CryptographicOperations.FixedTimeEquals(expected[.._parameters.Digits], given[.._parameters.Digits]);
            // No early exit: the loop always runs three times whatever matched.
            var fresh = lastAcceptedStep is null || step > lastAcceptedStep.Value;
            if (equal && fresh && matched < 0) matched = step;
        }
        return matched >= 0 ? new TotpVerification(true, matched) : TotpVerification.Failed;
    }
}

/// <summary>Builds <c>otpauth://totp/</c> key URIs (the format authenticator apps scan from a QR code).</summary>
public static class OtpAuthUri
{
    /// <summary>
    /// <c>otpauth://totp/Issuer:account?secret=…&amp;issuer=…&amp;algorithm=SHA1&amp;digits=6&amp;period=30</c>.
    /// Issuer and account are percent-encoded (spaces as %20, which apps expect, never '+').
    /// </summary>
    public static string Build(string issuer, string account, string base32Secret, TotpParameters? parameters = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(issuer);
        ArgumentException.ThrowIfNullOrWhiteSpace(account);
        ArgumentException.ThrowIfNullOrWhiteSpace(base32Secret);
        // The label separates issuer and account with ':'; a colon inside either would be ambiguous.
        if (issuer.Contains(':')) throw new ArgumentException("The issuer must not contain ':'.", nameof(issuer));
        if (account.Contains(':')) throw new ArgumentException("The account name must not contain ':'.", nameof(account));
        if (!Base32.TryDecode(base32Secret, out _)) throw new ArgumentException("The secret must be base32 (RFC 4648).", nameof(base32Secret));
        var p = parameters ?? TotpParameters.Default;
        p.Validate();
        var algorithm = p.Algorithm switch
        {
            TotpAlgorithm.Sha1 => "SHA1",
            TotpAlgorithm.Sha256 => "SHA256",
            _ => "SHA512",
        };
        var secret = base32Secret.Replace(" ", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal).TrimEnd('=').ToUpperInvariant();
        var i = Uri.EscapeDataString(issuer);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"otpauth://totp/{i}:{Uri.EscapeDataString(account)}?secret={secret}&issuer={i}&algorithm={algorithm}&digits={p.Digits}&period={p.PeriodSeconds}");
    }
}
