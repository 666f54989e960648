using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Storage;
using Npgsql;

namespace Gateway.Operator.Tests.KeyRequests;

/// <summary>Inserts key requests as the portal does (with a fresh reveal key pair) and reads their outcome.</summary>
public static class KeyRequestTestData
{
    public sealed record Request(Guid Id, byte[] PrivateKey);

    public static async Task<Request> InsertAsync(string connectionString, Guid userId, string kind, Guid? apiKeyId = null, KeyRequestParameters? parameters = null)
    {
        var id = Guid.NewGuid();
        byte[]? publicKey = null, privateKey = null;
        if (KeyRequestKinds.Reveals(kind)) (publicKey, privateKey) = KeyRevealCipher.CreateKeyPair();
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "INSERT INTO key_requests (id, user_id, api_key_id, kind, parameters, reveal_public_key) VALUES ($1, $2, $3, $4, $5::jsonb, $6)", conn);
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        cmd.Parameters.Add(new NpgsqlParameter { Value = userId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)apiKeyId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        cmd.Parameters.Add(new NpgsqlParameter { Value = kind });
        cmd.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(parameters ?? new KeyRequestParameters(), TokenGateJson.Options) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = publicKey is null ? DBNull.Value : Convert.ToBase64String(publicKey), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await cmd.ExecuteNonQueryAsync();
        return new Request(id, privateKey ?? []);
    }

    /// <summary>The revealed key, decrypted with the request's private key (as the portal does).</summary>
    public static string Decrypt(KeyRevealRow reveal, Request request) => KeyRevealCipher.Decrypt(request.PrivateKey, reveal.Ciphertext, request.Id);
}
