using System.Security.Cryptography;
using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Security;
using Gateway.Operator.Projection;
using Gateway.Testing;

namespace Gateway.Operator.Tests.Projection;

/// <summary>The operator's one write path for upstream accounts seals every credential with the active key.</summary>
public sealed class ProjectionWriterCredentialTests : IAsyncLifetime
{
    private readonly ProjectionKeys _keys = new(TestEnvironment.UniqueRedisPrefix());
    private RespClient _redis = null!;

    public async Task InitializeAsync() => _redis = await RespClient.ConnectAsync(TestEnvironment.Redis);

    public async Task DisposeAsync()
    {
        await _redis.ExecuteAsync("DEL", [_keys.Upstreams]);
        await _redis.DisposeAsync();
    }

    private static UpstreamProjection Account(string name, string? credential) =>
        new() { Name = name, Provider = "openai", BaseUrl = "https://api.example.com/v1", Credential = credential };

    private async Task<(string Json, List<UpstreamProjection> Stored)> ReadAsync()
    {
        var json = (await _redis.ExecuteAsync("GET", [_keys.Upstreams])).AsString()!;
        return (json, JsonSerializer.Deserialize<List<UpstreamProjection>>(json, TokenGateJson.Options)!);
    }

    [Fact]
    public async Task Writes_use_the_active_key_and_a_rotation_re_encrypts_on_the_next_write()
    {
        var (k1, k2) = (RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(32));
        var before = new CredentialProtector(new Dictionary<string, byte[]> { ["k1"] = k1 }, "k1");
        var after = new CredentialProtector(new Dictionary<string, byte[]> { ["k1"] = k1, ["k2"] = k2 }, "k2");
        IReadOnlyList<UpstreamProjection> accounts = [Account("team-a/openai", "sk-live-aaaaaaaaaaaaaaaaaaaa"), Account("team-a/keyless", null)];

        await new ProjectionWriter(_redis, _keys, before).WriteUpstreamsAsync(accounts, CancellationToken.None);
        var (json, stored) = await ReadAsync();
        Assert.DoesNotContain("sk-live-", json, StringComparison.Ordinal);
        Assert.Equal("k1", CredentialProtector.KeyIdOf(stored[0].EncryptedCredential));
        Assert.Null(stored[0].Credential);
        Assert.Null(stored[1].EncryptedCredential); // nothing to seal
        // The caller's objects keep their plaintext (the operator caches them); only what is stored is sealed.
        Assert.Equal("sk-live-aaaaaaaaaaaaaaaaaaaa", accounts[0].Credential);

        await new ProjectionWriter(_redis, _keys, after).WriteUpstreamsAsync(accounts, CancellationToken.None);
        (json, stored) = await ReadAsync();
        Assert.DoesNotContain("sk-live-", json, StringComparison.Ordinal);
        Assert.Equal("k2", CredentialProtector.KeyIdOf(stored[0].EncryptedCredential));
        Assert.True(after.TryUnprotect(stored[0].EncryptedCredential!, "team-a/openai", out var plaintext, out _, out _));
        Assert.Equal("sk-live-aaaaaaaaaaaaaaaaaaaa", plaintext);
    }

    [Fact]
    public async Task Only_an_explicit_development_setting_stores_plaintext()
    {
        await new ProjectionWriter(_redis, _keys, CredentialProtector.Plaintext()).WriteUpstreamsAsync([Account("dev/local", "sk-dev")], CancellationToken.None);
        var (_, stored) = await ReadAsync();
        Assert.Equal("sk-dev", Assert.Single(stored).Credential);
        Assert.Null(stored[0].EncryptedCredential);
    }
}
