using System.Security.Cryptography;
using System.Text;

namespace Gateway.Core.Keys;

/// <summary>
/// Encrypts an issued key to the requester's ephemeral P-256 public key (ECIES: ephemeral ECDH, HKDF-SHA256,
/// AES-256-GCM), so the operator can hand a key to the portal without the two sharing a secret and without
/// the plaintext ever being stored. The request id is bound as associated data: a ciphertext cannot be
/// replayed into another request's reveal.
/// Layout: version (1) | ephemeral public point, uncompressed (65) | nonce (12) | tag (16) | ciphertext.
/// </summary>
public static class KeyRevealCipher
{
    private const byte FormatVersion = 1;
    private const int PointLength = 65;
    private const int NonceLength = 12;
    private const int TagLength = 16;
    private const int HeaderLength = 1 + PointLength + NonceLength + TagLength;
    private static readonly byte[] Info = "tokengate key reveal v1"u8.ToArray();

    /// <summary>A fresh key pair for one request: the public key (SubjectPublicKeyInfo) and the private key (PKCS#8).</summary>
    public static (byte[] PublicKey, byte[] PrivateKey) CreateKeyPair()
    {
        using var ecdh = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        return (ecdh.ExportSubjectPublicKeyInfo(), ecdh.ExportPkcs8PrivateKey());
    }

    /// <summary>Encrypts <paramref name="plaintext"/> to <paramref name="recipientPublicKey"/> (SubjectPublicKeyInfo).</summary>
    public static byte[] Encrypt(ReadOnlySpan<byte> recipientPublicKey, string plaintext, Guid requestId)
    {
        using var recipient = ECDiffieHellman.Create();
        recipient.ImportSubjectPublicKeyInfo(recipientPublicKey, out _);
        if (recipient.KeySize != 256) throw new CryptographicException("The reveal public key must be a P-256 key.");
        using var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var ephemeralPoint = Point(ephemeral.ExportParameters(false));
        var key = DeriveKey(ephemeral, recipient.PublicKey, ephemeralPoint, Point(recipient.ExportParameters(false)));

        var data = Encoding.UTF8.GetBytes(plaintext);
        var output = new byte[HeaderLength + data.Length];
        output[0] = FormatVersion;
        ephemeralPoint.CopyTo(output.AsSpan(1));
        var nonce = output.AsSpan(1 + PointLength, NonceLength);
        RandomNumberGenerator.Fill(nonce);
        using (var gcm = new AesGcm(key, TagLength))
        {
            gcm.Encrypt(nonce, data, output.AsSpan(HeaderLength), output.AsSpan(1 + PointLength + NonceLength, TagLength), requestId.ToByteArray());
        }
        CryptographicOperations.ZeroMemory(data);
        CryptographicOperations.ZeroMemory(key);
        return output;
    }

    /// <summary>Decrypts with the request's private key (PKCS#8); throws <see cref="CryptographicException"/> when anything was altered.</summary>
    public static string Decrypt(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> ciphertext, Guid requestId)
    {
        if (ciphertext.Length < HeaderLength || ciphertext[0] != FormatVersion) throw new CryptographicException("Not a TokenGate key reveal.");
        using var recipient = ECDiffieHellman.Create();
        recipient.ImportPkcs8PrivateKey(privateKey, out _);
        var ephemeralPoint = ciphertext.Slice(1, PointLength).ToArray();
        if (ephemeralPoint[0] != 0x04) throw new CryptographicException("Not a TokenGate key reveal.");
        using var ephemeral = ECDiffieHellman.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = ephemeralPoint[1..33], Y = ephemeralPoint[33..65] },
        });
        var key = DeriveKey(recipient, ephemeral.PublicKey, ephemeralPoint, Point(recipient.ExportParameters(false)));
        var data = new byte[ciphertext.Length - HeaderLength];
        try
        {
            using var gcm = new AesGcm(key, TagLength);
            gcm.Decrypt(ciphertext.Slice(1 + PointLength, NonceLength), ciphertext[HeaderLength..],
                ciphertext.Slice(1 + PointLength + NonceLength, TagLength), data, requestId.ToByteArray());
            return Encoding.UTF8.GetString(data);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(data);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static byte[] DeriveKey(ECDiffieHellman own, ECDiffieHellmanPublicKey other, byte[] ephemeralPoint, byte[] recipientPoint)
    {
        var shared = own.DeriveRawSecretAgreement(other);
        try
        {
            // Salt binds both public keys, as ECIES-KEM does.
            return HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, [.. ephemeralPoint, .. recipientPoint], Info);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    private static byte[] Point(ECParameters p) => [0x04, .. p.Q.X!, .. p.Q.Y!];
}
