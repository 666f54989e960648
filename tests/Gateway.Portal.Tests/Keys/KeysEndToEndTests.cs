using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Gateway.MockUpstream;
using Gateway.Operator.Hosting;
using Gateway.Portal.Tests.Infrastructure;
using Gateway.Proxy;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Portal.Tests.Keys;

/// <summary>
/// The whole path: a user signed in through the real form creates and rotates keys on the portal, the real
/// operator (file source, woken by NOTIFY) issues them, the portal shows each once, and the real proxy accepts them.
/// </summary>
public sealed partial class KeysEndToEndTests : IAsyncLifetime
{
    private readonly List<WebApplication> _apps = [];
    private PortalHarness _h = null!;
    private string _root = null!;
    private Uri _proxy = null!;
    private HttpClient _http = null!;
    private SeededUser _user = null!;

    public async Task InitializeAsync()
    {
        _h = await PortalHarness.StartAsync();
        // Enrolled before the operator first reads the samples: it then adopts this users row for UserQuota demo.
        _user = await _h.SeedEnrolledUserAsync("demo");
        _root = Path.Combine(Path.GetTempPath(), "tg-keys-" + Guid.NewGuid().ToString("N")[..8]);
        var samples = Path.Combine(_root, "samples");
        Directory.CreateDirectory(samples);
        var pepper = Path.Combine(_root, "pepper");
        await File.WriteAllTextAsync(pepper, "keys-e2e-pepper-" + Guid.NewGuid().ToString("N"));

        var mock = await StartAsync(MockUpstreamApp.Build(["--urls", "http://127.0.0.1:0"]));
        foreach (var f in Directory.GetFiles(RepoPaths.Samples, "*.yaml"))
        {
            var text = (await File.ReadAllTextAsync(f)).Replace("http://127.0.0.1:8089", mock.ToString().TrimEnd('/'), StringComparison.Ordinal);
            await File.WriteAllTextAsync(Path.Combine(samples, Path.GetFileName(f)), text);
        }
        string[] common =
        [
            "--urls", "http://127.0.0.1:0",
            "--ConnectionStrings:Postgres", _h.ConnectionString,
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:PepperFile", pepper,
            .. TestCredentialKeys.Args,
            "--TokenGate:Redis:KeyPrefix", TestEnvironment.UniqueRedisPrefix(),
            "--TokenGate:PricesDirectory", RepoPaths.Prices,
        ];
        // A long poll: the operator must be woken by the portal's NOTIFY.
        await StartAsync(OperatorApp.Build([.. common, "--source", "dir:" + samples, "--state-dir", Path.Combine(_root, "state"), "--TokenGate:KeyRequests:PollInterval", "00:05:00"]));
        _proxy = await StartAsync(ProxyApp.Build(common));
        _http = new HttpClient { BaseAddress = _proxy };
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        for (var i = _apps.Count - 1; i >= 0; i--)
        {
            await _apps[i].StopAsync();
            await _apps[i].DisposeAsync();
        }
        await _h.DisposeAsync();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private async Task<Uri> StartAsync(WebApplication app)
    {
        _apps.Add(app);
        await app.StartAsync();
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
    }

    private async Task<HttpStatusCode> ModelsAsync(string key)
    {
        using var r = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key) } });
        return r.StatusCode;
    }

    /// <summary>Follows the reveal page until the operator is done; returns the key it shows (once).</summary>
    private static async Task<string> RevealAsync(PortalClient client, HttpResponseMessage post)
    {
        Assert.Equal(HttpStatusCode.Redirect, post.StatusCode);
        var reveal = post.Headers.Location!.OriginalString;
        Assert.StartsWith("/keys/reveal/", reveal, StringComparison.Ordinal);
        var key = await Eventually.ReturnsAsync(async () =>
        {
            var html = await client.GetPageAsync(reveal);
            var m = KeyField().Match(html);
            if (!m.Success) Assert.Contains("issuing the key", html, StringComparison.Ordinal);
            return m.Success ? m.Groups[1].Value : null;
        }, "the reveal page to show the key", TimeSpan.FromSeconds(120)); // a chain of three hosts; seen over 60 s under stress-ng plus builds
        Assert.Contains("already shown", PortalClient.ElementText(await client.GetPageAsync(reveal), "reveal-status"), StringComparison.Ordinal);
        return key;
    }

    [Fact]
    public async Task A_signed_in_user_creates_a_key_sees_it_once_and_the_proxy_accepts_it_then_rotates_the_GitOps_key()
    {
        using var client = await _h.SignInAsync(_user);
        string demoKeyPrefix = await Eventually.ReturnsAsync(async () =>
        {
            await using var db = _h.CreateDbContext();
            return await db.ApiKeys.Where(k => k.Name == "demo" && k.KeyPrefix != null).Select(k => k.KeyPrefix).SingleOrDefaultAsync();
        }, "the operator to issue the demo key");
        Assert.Contains(demoKeyPrefix, await client.GetPageAsync("/keys"), StringComparison.Ordinal);

        using var create = await client.PostFormAsync("/keys/new", [new("Description", "end to end"), new("ExpiresOn", ""), new("AllowedModels", "")]);
        var key = await RevealAsync(client, create);
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(key));
        var list = await client.GetPageAsync("/keys");
        Assert.Contains(key[..9], list, StringComparison.Ordinal);
        Assert.DoesNotContain(key[9..], list, StringComparison.Ordinal);

        Guid demoId;
        await using (var db = _h.CreateDbContext()) demoId = (await db.ApiKeys.SingleAsync(k => k.Name == "demo")).Id;
        var secret = await File.ReadAllTextAsync(Path.Combine(_root, "state", "secrets", "default", "demo-apikey.yaml"));
        var oldKey = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(Regex.Match(secret, "OPENAI_API_KEY: (\\S+)").Groups[1].Value));
        Assert.StartsWith(demoKeyPrefix, oldKey, StringComparison.Ordinal);
        using var rotate = await client.PostFormAsync("/keys", [new("id", demoId.ToString()), new("action", "rotate")]);
        var rotated = await RevealAsync(client, rotate);
        Assert.NotEqual(oldKey, rotated);
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(rotated));
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(oldKey)); // the previous version lives out its grace period
        Assert.Contains(rotated[..9], await client.GetPageAsync("/keys"), StringComparison.Ordinal);

        // No log line of the portal ever held a key.
        Assert.DoesNotContain(_h.Logs.Lines, l => l.Contains(key[3..], StringComparison.Ordinal) || l.Contains(rotated[3..], StringComparison.Ordinal));
    }

    [GeneratedRegex("id=\"revealed-key\"[^>]*value=\"(tg-[0-9A-Za-z]{43})\"")]
    private static partial Regex KeyField();
}
