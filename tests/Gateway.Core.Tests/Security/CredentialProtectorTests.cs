using System.Security.Cryptography;
using System.Text;
using Gateway.Core.Security;

namespace Gateway.Core.Tests.Security;

public sealed class CredentialProtectorTests
{
    private const string Account = "default/openai-main";
    private const string Secret = "sk-test-0123456789abcdefghijklmnopqrstuvwxyz";

    private static byte[] NewKey() => RandomNumberGenerator.GetBytes(CredentialProtector.KeyLength);

    private static CredentialProtector Ring(string active, params (string Id, byte[] Key)[] keys) =>
        new(keys.ToDictionary(k => k.Id, k => k.Key), active);

    private static string Open(CredentialProtector ring, string envelope, string account = Account)
    {
        Assert.True(ring.TryUnprotect(envelope, account, out var plaintext, out var failure, out _), $"expected to decrypt, got {failure}");
        Assert.Equal(CredentialFailure.None, failure);
        return plaintext;
    }

    [Fact]
    public void Round_trips_and_the_envelope_names_the_active_key_without_the_plaintext()
    {
        var ring = Ring("k1", ("k1", NewKey()));
        var envelope = ring.Protect(Secret, Account);

        Assert.StartsWith("v1:k1:", envelope, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, envelope, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(Secret)), envelope, StringComparison.Ordinal);
        Assert.Equal("k1", CredentialProtector.KeyIdOf(envelope));
        Assert.Equal(Secret, Open(ring, envelope));
    }

    [Fact]
    public void Encrypting_twice_gives_different_envelopes_that_both_open()
    {
        var ring = Ring("k1", ("k1", NewKey()));
        var a = ring.Protect(Secret, Account);
        var b = ring.Protect(Secret, Account);
        Assert.NotEqual(a, b); // a fresh nonce each time
        Assert.Equal(Secret, Open(ring, a));
        Assert.Equal(Secret, Open(ring, b));
    }

    [Fact]
    public void A_tampered_envelope_fails_authentication()
    {
        var ring = Ring("k1", ("k1", NewKey()));
        var envelope = ring.Protect(Secret, Account);
        var prefix = "v1:k1:";
        var sealedBytes = Convert.FromBase64String(envelope[prefix.Length..]);
        for (var i = 0; i < sealedBytes.Length; i += 7)
        {
            // Nonce, ciphertext and tag: a flipped bit anywhere is detected.
            var copy = (byte[])sealedBytes.Clone();
            copy[i] ^= 0x01;
            Assert.False(ring.TryUnprotect(prefix + Convert.ToBase64String(copy), Account, out var plaintext, out var failure, out var keyId));
            Assert.Null(plaintext);
            Assert.Equal(CredentialFailure.Invalid, failure);
            Assert.Equal("k1", keyId);
        }
        Assert.False(ring.TryUnprotect(prefix + Convert.ToBase64String(sealedBytes[..^1]), Account, out _, out var truncated, out _));
        Assert.Equal(CredentialFailure.Invalid, truncated);
        Assert.False(ring.TryUnprotect(prefix + "not base64!", Account, out _, out var garbage, out _));
        Assert.Equal(CredentialFailure.Invalid, garbage);
        Assert.False(ring.TryUnprotect(Secret, Account, out _, out var notEnvelope, out var none));
        Assert.Equal(CredentialFailure.Invalid, notEnvelope);
        Assert.Null(none);
    }

    [Fact]
    public void An_envelope_moved_to_another_account_does_not_open()
    {
        var ring = Ring("k1", ("k1", NewKey()));
        var envelope = ring.Protect(Secret, Account);
        Assert.False(ring.TryUnprotect(envelope, "default/other-account", out var plaintext, out var failure, out _));
        Assert.Null(plaintext);
        Assert.Equal(CredentialFailure.Invalid, failure);
    }

    [Fact]
    public void After_rotation_old_envelopes_still_open_and_new_ones_use_the_active_key()
    {
        var (old, fresh) = (NewKey(), NewKey());
        var before = Ring("2026-01", ("2026-01", old));
        var oldEnvelope = before.Protect(Secret, Account);

        // Step 1 of a rotation: the new key is known everywhere but not yet active.
        var rolledOut = Ring("2026-01", ("2026-01", old), ("2026-12", fresh));
        Assert.StartsWith("v1:2026-01:", rolledOut.Protect(Secret, Account), StringComparison.Ordinal);

        // Step 2: the new key is active; what was written before still opens.
        var after = Ring("2026-12", ("2026-01", old), ("2026-12", fresh));
        var newEnvelope = after.Protect("sk-rotated", Account);
        Assert.StartsWith("v1:2026-12:", newEnvelope, StringComparison.Ordinal);
        Assert.Equal(Secret, Open(after, oldEnvelope));
        Assert.Equal("sk-rotated", Open(after, newEnvelope));
        // A process that missed step 1 cannot read the new envelope: it knows the key id is not its own.
        Assert.False(before.TryUnprotect(newEnvelope, Account, out _, out var failure, out var keyId));
        Assert.Equal((CredentialFailure.UnknownKey, "2026-12"), (failure, keyId));

        // Step 3: the old key removed; old envelopes (none should be left) are reported as unknown.
        var retired = Ring("2026-12", ("2026-12", fresh));
        Assert.False(retired.TryUnprotect(oldEnvelope, Account, out _, out var gone, out _));
        Assert.Equal(CredentialFailure.UnknownKey, gone);
    }

    [Fact]
    public void A_key_with_the_same_id_but_other_bytes_does_not_open_the_envelope()
    {
        var envelope = Ring("k1", ("k1", NewKey())).Protect(Secret, Account);
        Assert.False(Ring("k1", ("k1", NewKey())).TryUnprotect(envelope, Account, out _, out var failure, out _));
        Assert.Equal(CredentialFailure.Invalid, failure);
    }

    [Fact]
    public void Rejects_wrong_key_lengths_bad_ids_and_a_missing_active_key_without_echoing_the_key()
    {
        var shortKey = RandomNumberGenerator.GetBytes(16);
        var e = Assert.Throws<ArgumentException>(() => Ring("k1", ("k1", shortKey)));
        Assert.Contains("32 bytes", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(shortKey), e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Ring("a:b", ("a:b", NewKey())));
        Assert.Contains("'k2' is not among", Assert.Throws<ArgumentException>(() => Ring("k2", ("k1", NewKey()))).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new CredentialProtector(new Dictionary<string, byte[]>(), null));
    }

    [Fact]
    public void A_plaintext_ring_cannot_encrypt_and_opens_nothing()
    {
        var ring = CredentialProtector.Plaintext();
        Assert.False(ring.CanEncrypt);
        Assert.True(ring.AllowPlaintext);
        Assert.Throws<InvalidOperationException>(() => ring.Protect(Secret, Account));
        var envelope = Ring("k1", ("k1", NewKey())).Protect(Secret, Account);
        Assert.False(ring.TryUnprotect(envelope, Account, out _, out var failure, out _));
        Assert.Equal(CredentialFailure.UnknownKey, failure);
    }
}
