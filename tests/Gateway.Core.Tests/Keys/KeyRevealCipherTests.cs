using System.Security.Cryptography;
using System.Text;
using Gateway.Core.Keys;

namespace Gateway.Core.Tests.Keys;

public sealed class KeyRevealCipherTests
{
    [Fact]
    public void Round_trips_a_key_to_the_holder_of_the_private_key_and_the_ciphertext_does_not_contain_it()
    {
        var (publicKey, privateKey) = KeyRevealCipher.CreateKeyPair();
        var key = ApiKeyFormat.Generate();
        var id = Guid.NewGuid();

        var ciphertext = KeyRevealCipher.Encrypt(publicKey, key, id);

        Assert.Equal(key, KeyRevealCipher.Decrypt(privateKey, ciphertext, id));
        Assert.DoesNotContain(key[3..], Encoding.UTF8.GetString(ciphertext), StringComparison.Ordinal);
        Assert.DoesNotContain(key[3..], Convert.ToBase64String(ciphertext), StringComparison.Ordinal);
        // A fresh ephemeral key and nonce every time: equal plaintexts give different ciphertexts.
        Assert.NotEqual(ciphertext, KeyRevealCipher.Encrypt(publicKey, key, id));
    }

    [Fact]
    public void Refuses_another_private_key_another_request_id_and_any_altered_byte()
    {
        var (publicKey, privateKey) = KeyRevealCipher.CreateKeyPair();
        var (_, otherPrivate) = KeyRevealCipher.CreateKeyPair();
        var id = Guid.NewGuid();
        var ciphertext = KeyRevealCipher.Encrypt(publicKey, ApiKeyFormat.Generate(), id);

        Assert.ThrowsAny<CryptographicException>(() => KeyRevealCipher.Decrypt(otherPrivate, ciphertext, id));
        Assert.ThrowsAny<CryptographicException>(() => KeyRevealCipher.Decrypt(privateKey, ciphertext, Guid.NewGuid()));
        foreach (var i in new[] { 0, 1, 70, 80, ciphertext.Length - 1 })
        {
            var altered = (byte[])ciphertext.Clone();
            altered[i] ^= 0x01;
            Assert.ThrowsAny<CryptographicException>(() => KeyRevealCipher.Decrypt(privateKey, altered, id));
        }
        Assert.ThrowsAny<CryptographicException>(() => KeyRevealCipher.Decrypt(privateKey, ciphertext.AsSpan(0, 50), id));
    }
}
