using System.Net;
using System.Security.Cryptography;
using Gateway.Core.Security;
using Gateway.MockUpstream.Recording;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Proxy.Tests.Routing;

/// <summary>
/// Upstream credentials reach the proxy encrypted (the harness stores them as the operator does) and are
/// decrypted into memory only; an account whose credential does not decrypt is skipped, logged and counted.
/// </summary>
public sealed class UpstreamCredentialTests : IAsyncLifetime
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";
    private readonly CapturingLoggerProvider _logs = new("proxy");
    private ProxyHarness _h = null!;

    public async Task InitializeAsync()
    {
        _h = await ProxyHarness.StartAsync();
        // After start: the host's logging set-up replaces the providers a builder had.
        _h.ProxyServices(0).GetRequiredService<ILoggerFactory>().AddProvider(_logs);
    }

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<HttpStatusCode> SendAsync(TestCaller c, string body = Chat)
    {
        using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, body));
        return r.StatusCode;
    }

    private static bool Unusable(string metrics, string upstream, string reason) =>
        metrics.Split('\n').Any(l => l.StartsWith("tokengate_proxy_upstream_credential_unusable{", StringComparison.Ordinal)
                                      && l.Contains($"upstream=\"{upstream}\"", StringComparison.Ordinal)
                                      && l.Contains($"reason=\"{reason}\"", StringComparison.Ordinal) && l.EndsWith("} 1", StringComparison.Ordinal));

    [Fact]
    public async Task The_stored_projection_holds_no_plaintext_and_the_proxy_still_authenticates_upstream()
    {
        var stored = (await _h.Redis.ExecuteAsync("GET", [_h.Keys.Upstreams])).AsString()!;
        Assert.DoesNotContain(ProxyHarness.MockCredential, stored, StringComparison.Ordinal);
        Assert.Contains("\"encryptedCredential\":\"v1:" + TestCredentialKeys.KeyId + ":", stored, StringComparison.Ordinal);

        // The mock answers 401 unless it receives exactly its key: a 200 means the proxy decrypted it.
        var c = await _h.CreateCallerAsync();
        Assert.Equal(HttpStatusCode.OK, await SendAsync(c));
        var sent = (await _h.MockRequestsAsync()).Last().Credential("authorization")!;
        Assert.Equal(("Bearer", RecordedRequest.HashCredential(ProxyHarness.MockCredential)), (sent.Scheme, sent.Sha256));
    }

    [Fact]
    public async Task An_account_sealed_with_an_unknown_key_is_skipped_with_a_warning_and_a_gauge_not_a_500()
    {
        // Another ring with the same id format: e.g. the operator was rotated to a key this proxy was not given.
        var foreignRing = new CredentialProtector(new Dictionary<string, byte[]> { ["rotated-2"] = RandomNumberGenerator.GetBytes(32) }, "rotated-2");
        var foreign = _h.MockUpstream("default/foreign", priority: 0) with
        {
            Credential = null,
            EncryptedCredential = foreignRing.Protect(ProxyHarness.MockCredential, "default/foreign"),
            Models = [new() { Name = "only-on-foreign" }, new() { Name = "gpt-4o-mini" }],
        };
        await _h.Projection.PutUpstreamsAsync(foreign, _h.MockUpstream("default/backup", priority: 1));
        var c = await _h.CreateCallerAsync();

        // Traffic goes to the account that decrypts; nothing is sent with a missing credential.
        // (A request loads the snapshot, so it goes first.)
        await Eventually.TrueAsync(async () => await SendAsync(c) == HttpStatusCode.OK
                                               && _logs.Lines.Any(l => l.Contains("default/foreign", StringComparison.Ordinal) && l.Contains("[902]", StringComparison.Ordinal)),
            "the proxy to load the new accounts");
        for (var i = 0; i < 5; i++) Assert.Equal(HttpStatusCode.OK, await SendAsync(c));
        await _h.WaitForUsageAsync(c.Key.KeyId, count: 6);
        var usage = (await _h.UsageEventsAsync()).Where(e => e.KeyId == c.Key.KeyId).ToList();
        Assert.All(usage, e => Assert.Equal("default/backup", e.Upstream));

        // A model only the skipped account serves: the designed 404, not a 500 and not an unauthenticated call upstream.
        Assert.Equal(HttpStatusCode.NotFound, await SendAsync(c, """{"model":"only-on-foreign","messages":[{"role":"user","content":"hi"}]}"""));

        var warning = Assert.Single(_logs.Lines, l => l.Contains("[902]", StringComparison.Ordinal) && l.Contains("default/foreign", StringComparison.Ordinal));
        Assert.StartsWith("Warning", warning, StringComparison.Ordinal);
        Assert.Contains("rotated-2", warning, StringComparison.Ordinal);
        Assert.DoesNotContain(_logs.Lines, l => l.Contains(ProxyHarness.MockCredential, StringComparison.Ordinal) || l.Contains(foreign.EncryptedCredential!, StringComparison.Ordinal));

        Assert.True(Unusable(await _h.MetricsAsync(), "default/foreign", "unknown_key"), "the gauge for the skipped account");
    }

    [Fact]
    public async Task A_credential_copied_from_another_account_does_not_decrypt()
    {
        var good = _h.MockUpstream("default/good", priority: 1);
        var envelope = TestCredentialKeys.Protector.Protect(ProxyHarness.MockCredential, "default/good");
        // Someone with write access to Redis moves the ciphertext to an account pointing elsewhere.
        var thief = _h.MockUpstream("default/thief", priority: 0) with { Credential = null, EncryptedCredential = envelope };
        await _h.Projection.PutUpstreamsAsync(thief, good);
        var c = await _h.CreateCallerAsync();

        await Eventually.TrueAsync(async () => await SendAsync(c) == HttpStatusCode.OK
                                               && _logs.Lines.Any(l => l.Contains("default/thief", StringComparison.Ordinal) && l.Contains("[903]", StringComparison.Ordinal)),
            "the proxy to load the new accounts");
        await _h.WaitForUsageAsync(c.Key.KeyId);
        Assert.All((await _h.UsageEventsAsync()).Where(e => e.KeyId == c.Key.KeyId), e => Assert.Equal("default/good", e.Upstream));
        Assert.True(Unusable(await _h.MetricsAsync(), "default/thief", "invalid"), "the gauge for the skipped account");

        // Fixed in the projection (the operator rewrote it): the account serves again and the gauge clears.
        await _h.Projection.PutUpstreamsAsync(_h.MockUpstream("default/thief", priority: 0), good);
        // None of the key's usage so far went to it (asserted above), so one usage event naming it shows it served. Not
        // "one more than before this request": under a quota lease (the default) the usage event leaves with the next
        // group commit, which may come after the response.
        await Eventually.TrueAsync(async () =>
            await SendAsync(c) == HttpStatusCode.OK
            && (await _h.UsageEventsAsync()).Any(e => e.KeyId == c.Key.KeyId && e.Upstream == "default/thief")
            && !Unusable(await _h.MetricsAsync(), "default/thief", "invalid"), "the repaired account to serve");
    }
}
