using Gateway.Core.Storage;
using Gateway.Portal.Keys;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Tests.Keys;

/// <summary>The portal's key requests and one-time reveals against real PostgreSQL.</summary>
public sealed class KeyRequestClientTests : IAsyncLifetime
{
    private KeyStore _s = null!;

    public async Task InitializeAsync() => _s = await KeyStore.CreateAsync();

    public async Task DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task A_rotation_request_carries_a_public_key_and_only_a_protected_private_key()
    {
        var user = await _s.AddUserAsync("alice");
        var (keyId, _) = await _s.AddKeyAsync(user, "alice-ci");

        var submitted = await _s.Client.RequestChangeAsync(user, keyId, KeyRequestKinds.Rotate, CancellationToken.None);

        Assert.Null(submitted.Error);
        await using var db = _s.Db();
        var row = await db.KeyRequests.SingleAsync();
        Assert.Equal((submitted.RequestId!.Value, KeyRequestKinds.Rotate, KeyRequestStatus.Pending, (Guid?)keyId), (row.Id, row.Kind, row.Status, row.ApiKeyId));
        using var ecdh = System.Security.Cryptography.ECDiffieHellman.Create();
        ecdh.ImportSubjectPublicKeyInfo(Convert.FromBase64String(row.RevealPublicKey!), out _);
        // The stored private key is a data-protection payload, not a PKCS#8 key anyone could import.
        Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => ecdh.ImportPkcs8PrivateKey(Convert.FromBase64String(row.RevealPrivateKey!), out _));
        // A second click joins the waiting request instead of queueing another rotation.
        Assert.Equal(submitted.RequestId, (await _s.Client.RequestChangeAsync(user, keyId, KeyRequestKinds.Rotate, CancellationToken.None)).RequestId);
    }

    [Fact]
    public async Task The_revealed_key_is_shown_once_then_reported_as_already_shown()
    {
        var user = await _s.AddUserAsync("alice");
        var (keyId, _) = await _s.AddKeyAsync(user, "alice-ci");
        var id = (await _s.Client.RequestChangeAsync(user, keyId, KeyRequestKinds.Rotate, CancellationToken.None)).RequestId!.Value;
        Assert.Equal(RevealState.Pending, (await _s.Reveal.OpenAsync(user, id, CancellationToken.None)).State);
        var issued = Gateway.Core.Keys.ApiKeyFormat.Generate();
        await _s.CompleteAsync(id, issued);
        await using (var db = _s.Db())
        {
            var stored = await db.KeyReveals.SingleAsync();
            Assert.DoesNotContain(issued[3..], System.Text.Encoding.Latin1.GetString(stored.Ciphertext), StringComparison.Ordinal);
        }

        var first = await _s.Reveal.OpenAsync(user, id, CancellationToken.None);
        var second = await _s.Reveal.OpenAsync(user, id, CancellationToken.None);

        Assert.Equal((RevealState.Revealed, issued, "alice-ci"), (first.State, first.Key, first.KeyName));
        Assert.Equal((RevealState.AlreadyShown, (string?)null), (second.State, second.Key));
        await using var after = _s.Db();
        Assert.False(await after.KeyReveals.AnyAsync());
        var request = await after.KeyRequests.SingleAsync();
        Assert.Null(request.RevealPrivateKey);
        Assert.NotNull(request.RevealedAt);
    }

    [Fact]
    public async Task Two_simultaneous_views_show_the_key_to_exactly_one()
    {
        var user = await _s.AddUserAsync("alice");
        var (keyId, _) = await _s.AddKeyAsync(user, "alice-ci");
        var id = (await _s.Client.RequestChangeAsync(user, keyId, KeyRequestKinds.Rotate, CancellationToken.None)).RequestId!.Value;
        await _s.CompleteAsync(id, Gateway.Core.Keys.ApiKeyFormat.Generate());

        var views = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => _s.Reveal.OpenAsync(user, id, CancellationToken.None))));

        Assert.Single(views, v => v.State == RevealState.Revealed);
        Assert.All(views.Where(v => v.State != RevealState.Revealed), v => Assert.Equal(RevealState.AlreadyShown, v.State));
    }

    [Fact]
    public async Task A_reveal_left_unopened_for_ten_minutes_is_expired_and_deleted()
    {
        var user = await _s.AddUserAsync("alice");
        var (keyId, _) = await _s.AddKeyAsync(user, "alice-ci");
        var id = (await _s.Client.RequestChangeAsync(user, keyId, KeyRequestKinds.Rotate, CancellationToken.None)).RequestId!.Value;
        await _s.CompleteAsync(id, Gateway.Core.Keys.ApiKeyFormat.Generate());

        _s.Time.Advance(TimeSpan.FromMinutes(10));
        var late = await _s.Reveal.OpenAsync(user, id, CancellationToken.None);

        Assert.Equal((RevealState.Expired, (string?)null), (late.State, late.Key));
        await using var db = _s.Db();
        Assert.False(await db.KeyReveals.AnyAsync());
        Assert.Null((await db.KeyRequests.SingleAsync()).RevealPrivateKey);
        Assert.Equal(RevealState.Expired, (await _s.Reveal.OpenAsync(user, id, CancellationToken.None)).State);
    }

    [Fact]
    public async Task Nobody_else_can_open_or_act_on_a_users_request_or_key()
    {
        var alice = await _s.AddUserAsync("alice");
        var mallory = await _s.AddUserAsync("mallory");
        var (keyId, _) = await _s.AddKeyAsync(alice, "alice-ci");
        var id = (await _s.Client.RequestChangeAsync(alice, keyId, KeyRequestKinds.Rotate, CancellationToken.None)).RequestId!.Value;
        await _s.CompleteAsync(id, Gateway.Core.Keys.ApiKeyFormat.Generate());

        Assert.Equal(RevealState.NotFound, (await _s.Reveal.OpenAsync(mallory, id, CancellationToken.None)).State);
        Assert.Equal("That key does not exist (or is not yours).", (await _s.Client.RequestChangeAsync(mallory, keyId, KeyRequestKinds.Disable, CancellationToken.None)).Error);
        Assert.Equal(RevealState.Revealed, (await _s.Reveal.OpenAsync(alice, id, CancellationToken.None)).State);
    }

    [Fact]
    public async Task Creating_beyond_maxKeys_and_deleting_a_GitOps_key_are_refused_with_clear_messages()
    {
        var user = await _s.AddUserAsync("alice", maxKeys: 2);
        var (gitops, _) = await _s.AddKeyAsync(user, "alice-gitops");
        var (portal, _) = await _s.AddKeyAsync(user, "alice-portal", portalCreated: true);

        var create = await _s.Client.RequestCreateAsync(user, "laptop", null, [], CancellationToken.None);
        Assert.Equal("You have 2 key(s), the most your quota allows (2). Delete a key first.", create.Error);
        Assert.False((await _s.Client.AllowanceAsync(user, CancellationToken.None)).CanCreate);

        var deleteGitops = await _s.Client.RequestChangeAsync(user, gitops, KeyRequestKinds.Delete, CancellationToken.None);
        Assert.Contains("declared in GitOps", deleteGitops.Error, StringComparison.Ordinal);
        var deletePortal = await _s.Client.RequestChangeAsync(user, portal, KeyRequestKinds.Delete, CancellationToken.None);
        Assert.Null(deletePortal.Error);
        await using var db = _s.Db();
        Assert.Equal([KeyRequestKinds.Delete], await db.KeyRequests.Select(r => r.Kind).ToListAsync());

        // Pending creations count against the allowance too.
        var roomy = await _s.AddUserAsync("bob", maxKeys: 1);
        Assert.Null((await _s.Client.RequestCreateAsync(roomy, null, null, [], CancellationToken.None)).Error);
        Assert.NotNull((await _s.Client.RequestCreateAsync(roomy, null, null, [], CancellationToken.None)).Error);
        Assert.Equal("The expiry date must be in the future.",
            (await _s.Client.RequestCreateAsync(await _s.AddUserAsync("carol"), null, _s.Time.GetUtcNow().AddDays(-1), [], CancellationToken.None)).Error);
    }

    [Fact]
    public async Task The_list_shows_prefixes_states_figures_and_the_previous_versions_grace_end()
    {
        var user = await _s.AddUserAsync("alice");
        var (active, plaintext) = await _s.AddKeyAsync(user, "a-active");
        var (rotated, _) = await _s.AddKeyAsync(user, "b-rotated", portalCreated: true);
        var (off, _) = await _s.AddKeyAsync(user, "c-off");
        var now = _s.Time.GetUtcNow();
        await using (var db = _s.Db())
        {
            var r = await db.ApiKeys.SingleAsync(k => k.Id == rotated);
            r.CurrentVersion = 2;
            db.ApiKeyVersions.Add(new ApiKeyVersionRow { ApiKeyId = rotated, Version = 2, KeyHash = new string('b', 64), KeyPrefix = "tg-bbbbbb", CreatedAt = now });
            (await db.ApiKeyVersions.SingleAsync(v => v.ApiKeyId == rotated && v.Version == 1)).ExpiresAt = now.AddHours(24);
            (await db.ApiKeys.SingleAsync(k => k.Id == off)).UserDisabled = true;
            await db.SaveChangesAsync();
        }
        // Usage as the ledger writer records it (usage_log, roll-ups and last use in one statement), on two days.
        await using (var data = Npgsql.NpgsqlDataSource.Create(_s.Database.ConnectionString))
        {
            await Gateway.Core.Usage.UsageLedgerBatch.WriteAsync(data,
            [
                new Gateway.Core.Usage.UsageEvent { RequestId = "r1", KeyId = active.ToString(), UserId = user.ToString(), Model = "gpt-4o-mini", Tokens = new(10, 0, 0, 5), Cost = 0.25m, StartedAt = now.AddDays(-1), Status = 200 },
                new Gateway.Core.Usage.UsageEvent { RequestId = "r2", KeyId = active.ToString(), UserId = user.ToString(), Model = "gpt-4o-mini", Tokens = new(1, 2, 0, 3), Cost = 0.5m, StartedAt = now.AddMinutes(-1), Status = 200 },
                new Gateway.Core.Usage.UsageEvent { RequestId = "r3", KeyId = rotated.ToString(), UserId = user.ToString(), Model = "gpt-4o", Tokens = new(7, 0, 0, 0), Cost = 0.01m, StartedAt = now.AddMinutes(-2), Status = 500 },
            ]);
        }
        await _s.Client.RequestChangeAsync(user, off, KeyRequestKinds.Enable, CancellationToken.None);

        var list = await _s.Client.ListAsync(user, CancellationToken.None);

        Assert.Equal(["a-active", "b-rotated", "c-off"], list.Select(k => k.Name));
        var a = list[0];
        Assert.Equal((plaintext[..9], KeyState.Active, 2L, 21L, 0.75m), (a.Prefix, a.State, a.Requests, a.Tokens, a.Spend));
        Assert.Equal(now.AddMinutes(-1), a.LastUsedAt!.Value, TimeSpan.FromMilliseconds(1));
        Assert.Null(a.PreviousVersionGraceEndsAt);
        Assert.Equal((1L, 7L, 0.01m), (list[1].Requests, list[1].Tokens, list[1].Spend));
        Assert.Equal((0L, (DateTimeOffset?)null), (list[2].Requests, list[2].LastUsedAt));
        Assert.Equal(now.AddHours(24), list[1].PreviousVersionGraceEndsAt!.Value, TimeSpan.FromMilliseconds(1));
        Assert.True(list[1].PortalCreated);
        Assert.Equal((KeyState.DisabledByOwner, KeyRequestKinds.Enable, true), (list[2].State, list[2].PendingRequest, list[2].CanEnable));
        Assert.All(list, k => Assert.DoesNotContain(plaintext[9..], k.ToString(), StringComparison.Ordinal));
    }
}
