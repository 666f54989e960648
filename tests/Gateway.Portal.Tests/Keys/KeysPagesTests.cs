using System.Net;
using Gateway.Core.Keys;
using Gateway.Core.Storage;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Tests.Keys;

/// <summary>
/// The Keys pages through the real portal and a real sign-in, against real PostgreSQL. The operator's part
/// (completing a request, encrypting the issued key) is played by <see cref="CompleteAsync"/>; the whole path
/// with the real operator and proxy is in <see cref="KeysEndToEndTests"/>.
/// </summary>
public sealed class KeysPagesTests : IAsyncLifetime
{
    private PortalHarness _h = null!;
    private SeededUser _user = null!;
    private PortalClient _client = null!;

    public async Task InitializeAsync()
    {
        _h = await PortalHarness.StartAsync();
        _user = await _h.SeedEnrolledUserAsync("alice");
        await SetMaxKeysAsync(3);
        _client = await _h.SignInAsync(_user);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _h.DisposeAsync();
    }

    private async Task SetMaxKeysAsync(int max)
    {
        await using var db = _h.CreateDbContext();
        var u = await db.Users.SingleAsync(x => x.Id == _user.Id);
        u.Spec = $$"""{"user":{"name":"alice","email":"alice@example.test"},"maxKeys":{{max}}}""";
        await db.SaveChangesAsync();
    }

    private async Task<(Guid Id, string Plaintext)> AddKeyAsync(string name, bool portalCreated)
    {
        var plaintext = ApiKeyFormat.Generate();
        var now = DateTimeOffset.UtcNow;
        await using var db = _h.CreateDbContext();
        var key = new ApiKeyRow
        {
            Id = Guid.NewGuid(), Namespace = "default", Name = name, UserId = _user.Id, Description = name + " key", CurrentVersion = 1,
            KeyPrefix = ApiKeyFormat.DisplayPrefix(plaintext), PortalCreated = portalCreated, CreatedAt = now, UpdatedAt = now,
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync();
        db.ApiKeyVersions.Add(new ApiKeyVersionRow { ApiKeyId = key.Id, Version = 1, KeyHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(plaintext))), KeyPrefix = key.KeyPrefix, CreatedAt = now });
        await db.SaveChangesAsync();
        return (key.Id, plaintext);
    }

    /// <summary>What the operator does with a request: done, and for create/rotate the key encrypted to the request's public key.</summary>
    private async Task CompleteAsync(Guid requestId, string? issued, string? error = null)
    {
        await using var db = _h.CreateDbContext();
        var r = await db.KeyRequests.SingleAsync(x => x.Id == requestId);
        r.Status = error is null ? KeyRequestStatus.Done : KeyRequestStatus.Failed;
        r.Error = error;
        r.CompletedAt = DateTimeOffset.UtcNow;
        r.ResultApiKeyId = r.ApiKeyId;
        if (issued is not null)
        {
            db.KeyReveals.Add(new KeyRevealRow
            {
                RequestId = requestId,
                Ciphertext = KeyRevealCipher.Encrypt(Convert.FromBase64String(r.RevealPublicKey!), issued, requestId),
                CreatedAt = DateTimeOffset.UtcNow,
                ExpiresAt = _h.Time.GetUtcNow() + KeyRequestContract.RevealLifetime,
            });
        }
        await db.SaveChangesAsync();
    }

    private static Guid RequestIdFrom(HttpResponseMessage r)
    {
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        var location = r.Headers.Location!.OriginalString;
        Assert.StartsWith("/keys/reveal/", location, StringComparison.Ordinal);
        return Guid.Parse(location["/keys/reveal/".Length..]);
    }

    [Fact]
    public async Task The_keys_page_lists_prefixes_and_figures_but_never_a_full_key_in_English_and_Chinese()
    {
        var (_, gitops) = await AddKeyAsync("alice-gitops", portalCreated: false);
        var (_, portal) = await AddKeyAsync("alice-laptop", portalCreated: true);

        var html = await _client.GetPageAsync("/keys");

        Assert.Contains(gitops[..9], html, StringComparison.Ordinal);
        Assert.Contains(portal[..9], html, StringComparison.Ordinal);
        Assert.DoesNotContain(gitops[9..], html, StringComparison.Ordinal);
        Assert.DoesNotContain(portal[9..], html, StringComparison.Ordinal);
        Assert.Contains("You have 2 of at most 3 keys.", PortalClient.ElementText(html, "allowance"), StringComparison.Ordinal);
        var gitopsRow = PortalClient.ElementText(html, "key-alice-gitops")!;
        var portalRow = PortalClient.ElementText(html, "key-alice-laptop")!;
        Assert.Contains("Rotate", gitopsRow, StringComparison.Ordinal);
        Assert.DoesNotContain("Delete", gitopsRow, StringComparison.Ordinal);
        Assert.Contains("Delete", portalRow, StringComparison.Ordinal);
        Assert.Contains("Active", portalRow, StringComparison.Ordinal);

        using var zh = new HttpRequestMessage(HttpMethod.Get, "/keys");
        zh.Headers.AcceptLanguage.ParseAdd("zh-CN");
        using var zhResponse = await _client.Http.SendAsync(zh);
        var zhHtml = await zhResponse.Content.ReadAsStringAsync();
        Assert.Contains("你有 2 个密钥，最多 3 个。", zhHtml, StringComparison.Ordinal);
        Assert.Contains("轮换", zhHtml, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rotating_waits_for_the_operator_then_shows_the_key_once_with_a_copy_button()
    {
        var (keyId, _) = await AddKeyAsync("alice-ci", portalCreated: false);
        using var post = await _client.PostFormAsync("/keys", [new("id", keyId.ToString()), new("action", KeyRequestKinds.Rotate)]);
        var requestId = RequestIdFrom(post);

        using (var waiting = await _client.GetAsync($"/keys/reveal/{requestId}"))
        {
            Assert.Equal(HttpStatusCode.OK, waiting.StatusCode);
            Assert.Equal("2", waiting.Headers.GetValues("Refresh").Single());
            Assert.Contains("issuing the key", await waiting.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var issued = ApiKeyFormat.Generate();
        await CompleteAsync(requestId, issued);

        using var shown = await _client.GetAsync($"/keys/reveal/{requestId}");
        var html = await shown.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, shown.StatusCode);
        Assert.Contains("no-store", shown.Headers.CacheControl!.ToString(), StringComparison.Ordinal);
        Assert.Contains($"value=\"{issued}\"", html, StringComparison.Ordinal);
        Assert.Contains("data-copy=\"revealed-key\"", html, StringComparison.Ordinal);
        Assert.Contains("/js/copy.js", html, StringComparison.Ordinal);
        Assert.Contains("navigator.clipboard", await _client.Http.GetStringAsync("/js/copy.js"), StringComparison.Ordinal);

        var again = await _client.GetPageAsync($"/keys/reveal/{requestId}");
        Assert.DoesNotContain(issued, again, StringComparison.Ordinal);
        Assert.Contains("already shown", PortalClient.ElementText(again, "reveal-status"), StringComparison.Ordinal);
        await using var db = _h.CreateDbContext();
        Assert.False(await db.KeyReveals.AnyAsync());
        Assert.Contains(await db.AuditLog.Select(a => a.Action).ToListAsync(), a => a == "key.rotate");
        Assert.DoesNotContain(_h.Logs.Lines, l => l.Contains(issued[3..], StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_reveal_opened_after_ten_minutes_says_expired()
    {
        var (keyId, _) = await AddKeyAsync("alice-ci", portalCreated: false);
        using var post = await _client.PostFormAsync("/keys", [new("id", keyId.ToString()), new("action", KeyRequestKinds.Rotate)]);
        var requestId = RequestIdFrom(post);
        var issued = ApiKeyFormat.Generate();
        await CompleteAsync(requestId, issued);

        _h.Time.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
        var html = await _client.GetPageAsync($"/keys/reveal/{requestId}");

        Assert.DoesNotContain(issued, html, StringComparison.Ordinal);
        Assert.Contains("has expired", PortalClient.ElementText(html, "reveal-status"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Creating_is_refused_at_maxKeys_and_a_new_key_goes_to_its_reveal()
    {
        await SetMaxKeysAsync(1);
        var html = await _client.GetPageAsync("/keys/new");
        Assert.Contains("<form", html, StringComparison.Ordinal);
        using (var created = await _client.PostFormAsync("/keys/new", [new("Description", "laptop"), new("ExpiresOn", ""), new("AllowedModels", "gpt-4o*, claude-*")]))
        {
            var requestId = RequestIdFrom(created);
            await using var db = _h.CreateDbContext();
            var row = await db.KeyRequests.SingleAsync(r => r.Id == requestId);
            Assert.Equal(KeyRequestKinds.Create, row.Kind);
            Assert.Contains("claude-*", row.Parameters, StringComparison.Ordinal);
        }

        // One pending creation uses the only slot: the page says so and a second POST is refused.
        var full = await _client.GetPageAsync("/keys/new");
        Assert.Contains("the most your quota allows (1)", PortalClient.ElementText(full, "new-key-error"), StringComparison.Ordinal);
        Assert.DoesNotContain("Create key</button>", full, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"new-key\"", await _client.GetPageAsync("/keys"), StringComparison.Ordinal);
        var token = PortalClient.FindAntiforgeryToken(await _client.GetPageAsync("/keys"))!;
        using var refused = await _client.PostFormWithTokenAsync("/keys/new", [new("Description", "second")], token);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("the most your quota allows (1)", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deleting_a_GitOps_key_is_refused_and_disable_reports_progress_until_done()
    {
        var (gitops, _) = await AddKeyAsync("alice-gitops", portalCreated: false);

        using var delete = await _client.PostFormAsync("/keys", [new("id", gitops.ToString()), new("action", KeyRequestKinds.Delete)]);
        Assert.Equal(HttpStatusCode.Conflict, delete.StatusCode);
        Assert.Contains("declared in GitOps", PortalClient.ElementText(await delete.Content.ReadAsStringAsync(), "key-error"), StringComparison.Ordinal);

        using var disable = await _client.PostFormAsync("/keys", [new("id", gitops.ToString()), new("action", KeyRequestKinds.Disable)]);
        Assert.Equal(HttpStatusCode.Redirect, disable.StatusCode);
        var location = disable.Headers.Location!.OriginalString;
        using (var pending = await _client.GetAsync(location))
        {
            Assert.Equal("2", pending.Headers.GetValues("Refresh").Single());
            Assert.Contains("disabling", PortalClient.ElementText(await pending.Content.ReadAsStringAsync(), "request-status"), StringComparison.Ordinal);
        }
        await using (var db = _h.CreateDbContext())
        {
            var requestId = (await db.KeyRequests.SingleAsync()).Id;
            Assert.Contains(requestId.ToString(), location, StringComparison.Ordinal);
            await CompleteAsync(requestId, null);
        }
        var done = await _client.GetPageAsync(location);
        Assert.Equal("Done.", PortalClient.ElementText(done, "request-status"));

        // Someone else's key id is refused, and a POST without the antiforgery token never reaches the handler.
        using var foreign = await _client.PostFormAsync("/keys", [new("id", Guid.NewGuid().ToString()), new("action", KeyRequestKinds.Rotate)]);
        Assert.Equal(HttpStatusCode.Conflict, foreign.StatusCode);
        using var forged = await _client.PostFormWithTokenAsync("/keys", [new("id", gitops.ToString()), new("action", KeyRequestKinds.Rotate)], null);
        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
    }

    [Fact]
    public async Task The_keys_pages_require_sign_in_and_an_unknown_reveal_is_not_found()
    {
        using var anonymous = _h.CreateClient();
        foreach (var path in new[] { "/keys", "/keys/new", $"/keys/reveal/{Guid.NewGuid()}" })
        {
            using var r = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
            Assert.Contains("/signin", r.Headers.Location!.OriginalString, StringComparison.Ordinal);
        }
        foreach (var path in new[] { "/keys/reveal/not-a-request", $"/keys/reveal/{Guid.NewGuid()}" })
        {
            using var r = await _client.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        }
    }
}
