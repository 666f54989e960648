using System.Security.Cryptography;
using Gateway.Core.Hosting;
using Gateway.Core.Security;
using Microsoft.Extensions.Configuration;

namespace Gateway.Core.Tests.Security;

public sealed class CredentialKeyConfigurationTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tg-credkeys-" + Guid.NewGuid().ToString("N")[..8]);

    private static string NewKey(int bytes = CredentialProtector.KeyLength) => Convert.ToBase64String(RandomNumberGenerator.GetBytes(bytes));

    private static (CredentialProtector? Ring, IReadOnlyList<string> Problems) Load(Dictionary<string, string?> settings)
    {
        var problems = new ConfigurationProblems();
        var ring = CredentialKeyConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), problems);
        return (ring, problems.Messages);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    [Fact]
    public void No_key_refuses_to_start_unless_plaintext_is_explicitly_allowed()
    {
        var (ring, problems) = Load([]);
        Assert.Null(ring);
        var problem = Assert.Single(problems);
        Assert.Contains("No credential encryption key configured", problem, StringComparison.Ordinal);
        Assert.Contains("TokenGate:Credentials:KeysDirectory", problem, StringComparison.Ordinal);
        Assert.Contains("TokenGate:Credentials:AllowPlaintext", problem, StringComparison.Ordinal);

        var (dev, none) = Load(new() { ["TokenGate:Credentials:AllowPlaintext"] = "true" });
        Assert.Empty(none);
        Assert.False(dev!.CanEncrypt);
    }

    [Fact]
    public void A_single_key_from_settings_is_the_active_key()
    {
        var key = NewKey();
        var (ring, problems) = Load(new() { ["TokenGate:Credentials:Keys:prod-1"] = key });
        Assert.Empty(problems);
        Assert.Equal("prod-1", ring!.ActiveKeyId);
        Assert.True(ring.TryUnprotect(ring.Protect("sk-x", "ns/a"), "ns/a", out var plaintext, out _, out _));
        Assert.Equal("sk-x", plaintext);
    }

    [Fact]
    public void Several_keys_need_an_active_key_that_exists()
    {
        var settings = new Dictionary<string, string?> { ["TokenGate:Credentials:Keys:a"] = NewKey(), ["TokenGate:Credentials:Keys:b"] = NewKey() };
        var (_, missing) = Load(settings);
        Assert.Contains("TokenGate:Credentials:ActiveKey is not set", Assert.Single(missing), StringComparison.Ordinal);

        settings["TokenGate:Credentials:ActiveKey"] = "c";
        var (_, unknown) = Load(settings);
        Assert.Contains("TokenGate:Credentials:ActiveKey 'c' is not one of the configured credential keys (a, b)", Assert.Single(unknown), StringComparison.Ordinal);

        settings["TokenGate:Credentials:ActiveKey"] = "b";
        var (ring, none) = Load(settings);
        Assert.Empty(none);
        Assert.Equal("b", ring!.ActiveKeyId);
        Assert.Equal(["a", "b"], ring.KeyIds);
    }

    [Fact]
    public void Wrong_lengths_and_bad_base64_are_reported_per_setting_without_the_value()
    {
        var shortKey = NewKey(16);
        var (ring, problems) = Load(new()
        {
            ["TokenGate:Credentials:Keys:short"] = shortKey,
            ["TokenGate:Credentials:Keys:garbage"] = "not*base64",
            ["TokenGate:Credentials:AllowPlaintext"] = "maybe",
        });
        Assert.Null(ring);
        Assert.Equal(3, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("TokenGate:Credentials:Keys:short must be 32 bytes (256 bits) in base64; it is 16 bytes", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("TokenGate:Credentials:Keys:garbage is not valid base64", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("TokenGate:Credentials:AllowPlaintext must be true or false", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.Contains(shortKey, StringComparison.Ordinal) || p.Contains("not*base64", StringComparison.Ordinal));
    }

    [Fact]
    public void A_mounted_Secret_folder_gives_the_keys_and_the_active_key_and_skips_the_kubelet_links()
    {
        Directory.CreateDirectory(_dir);
        Directory.CreateDirectory(Path.Combine(_dir, "..2026_12_07_data"));
        File.WriteAllText(Path.Combine(_dir, "..data"), "kubelet link stand-in");
        File.WriteAllText(Path.Combine(_dir, "old"), NewKey() + "\n");
        File.WriteAllText(Path.Combine(_dir, "new"), NewKey());
        File.WriteAllText(Path.Combine(_dir, "active"), "new\n");

        var (ring, problems) = Load(new() { ["TokenGate:Credentials:KeysDirectory"] = _dir });
        Assert.Empty(problems);
        Assert.Equal("new", ring!.ActiveKeyId);
        Assert.Equal(["new", "old"], ring.KeyIds);

        // The setting overrides the file (e.g. to switch back during a rotation).
        var (overridden, _) = Load(new() { ["TokenGate:Credentials:KeysDirectory"] = _dir, ["TokenGate:Credentials:ActiveKey"] = "old" });
        Assert.Equal("old", overridden!.ActiveKeyId);

        var (_, missing) = Load(new() { ["TokenGate:Credentials:KeysDirectory"] = Path.Combine(_dir, "absent") });
        Assert.Contains("is not a readable folder", Assert.Single(missing), StringComparison.Ordinal);
    }
}
