using System.Net;
using System.Net.Http.Headers;
using Gateway.Core.Storage;
using Gateway.Portal.Keys;
using Gateway.Testing;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.EndToEnd;

/// <summary>
/// Keys managed from the portal, end to end: the portal's request client and reveal, the operator host (file
/// source, woken by NOTIFY) issuing, and the proxy accepting or refusing the keys.
/// </summary>
public sealed class PortalKeyRequestTests : IAsyncLifetime
{
    private GatewayStack _stack = null!;
    private HttpClient _http = null!;
    private IDbContextFactory<TokenGateDbContext> _dbFactory = null!;
    private KeyRequestClient _client = null!;
    private KeyReveal _reveal = null!;

    public async Task InitializeAsync()
    {
        _stack = await GatewayStack.StartAsync();
        _http = new HttpClient { BaseAddress = _stack.ProxyUrl };
        _dbFactory = new Microsoft.EntityFrameworkCore.Infrastructure.PooledDbContextFactory<TokenGateDbContext>(
            new DbContextOptionsBuilder<TokenGateDbContext>().UseNpgsql(_stack.PostgresConnectionString)
                .ConfigureWarnings(w => w.Ignore(Microsoft.EntityFrameworkCore.Diagnostics.RelationalEventId.PendingModelChangesWarning)).Options);
        var protection = DataProtectionProvider.Create("TokenGate.EndToEnd");
        _client = new KeyRequestClient(_dbFactory, protection, TimeProvider.System, NullLogger<KeyRequestClient>.Instance);
        _reveal = new KeyReveal(_dbFactory, protection, TimeProvider.System, NullLogger<KeyReveal>.Instance);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _stack.DisposeAsync();
    }

    private async Task<HttpStatusCode> ModelsAsync(string key)
    {
        using var r = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key) } });
        return r.StatusCode;
    }

    private async Task<KeyRequestRow> CompletedAsync(Guid user, Guid id) =>
        await Eventually.ReturnsAsync(async () =>
        {
            var r = await _client.GetRequestAsync(user, id, CancellationToken.None);
            return r?.Status == KeyRequestStatus.Pending ? null : r;
        }, "the operator to complete the request");

    private async Task<string> RevealAsync(Guid user, Guid id)
    {
        var done = await CompletedAsync(user, id);
        Assert.Equal((KeyRequestStatus.Done, (string?)null), (done.Status, done.Error));
        var shown = await _reveal.OpenAsync(user, id, CancellationToken.None);
        Assert.Equal(RevealState.Revealed, shown.State);
        Assert.Equal(RevealState.AlreadyShown, (await _reveal.OpenAsync(user, id, CancellationToken.None)).State);
        return shown.Key!;
    }

    [Fact]
    public async Task A_key_created_from_the_portal_works_at_the_proxy_until_it_is_disabled_and_deleted()
    {
        var demoKey = await _stack.DemoKeyAsync();
        Guid user;
        await using (var db = await _dbFactory.CreateDbContextAsync()) user = (await db.Users.SingleAsync(u => u.Name == "demo")).Id;

        var create = await _client.RequestCreateAsync(user, "from the portal", null, [], CancellationToken.None);
        var key = await RevealAsync(user, create.RequestId!.Value);
        Assert.NotEqual(demoKey, key);
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(key));
        var created = (await CompletedAsync(user, create.RequestId.Value)).ResultApiKeyId!.Value;
        Assert.True(File.Exists(_stack.Source.PortalKeyPath("default", KeyRequestProcessorName(create.RequestId.Value))));

        var disable = await _client.RequestChangeAsync(user, created, KeyRequestKinds.Disable, CancellationToken.None);
        await CompletedAsync(user, disable.RequestId!.Value);
        await Eventually.TrueAsync(async () => await ModelsAsync(key) != HttpStatusCode.OK, "the disabled key to be refused");
        var enable = await _client.RequestChangeAsync(user, created, KeyRequestKinds.Enable, CancellationToken.None);
        await CompletedAsync(user, enable.RequestId!.Value);
        await Eventually.TrueAsync(async () => await ModelsAsync(key) == HttpStatusCode.OK, "the re-enabled key to be accepted");

        var delete = await _client.RequestChangeAsync(user, created, KeyRequestKinds.Delete, CancellationToken.None);
        await CompletedAsync(user, delete.RequestId!.Value);
        await Eventually.TrueAsync(async () => await ModelsAsync(key) == HttpStatusCode.Unauthorized, "the deleted key to be refused");
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(demoKey));
    }

    [Fact]
    public async Task Rotating_from_the_portal_reveals_a_new_key_and_the_old_one_keeps_working_through_its_grace_period()
    {
        var oldKey = await _stack.DemoKeyAsync();
        Guid user, demo;
        await using (var db = await _dbFactory.CreateDbContextAsync())
        {
            user = (await db.Users.SingleAsync(u => u.Name == "demo")).Id;
            demo = (await db.ApiKeys.SingleAsync(k => k.Name == "demo")).Id;
        }

        var rotate = await _client.RequestChangeAsync(user, demo, KeyRequestKinds.Rotate, CancellationToken.None);
        var newKey = await RevealAsync(user, rotate.RequestId!.Value);

        Assert.NotEqual(oldKey, newKey);
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(newKey));
        Assert.Equal(HttpStatusCode.OK, await ModelsAsync(oldKey));
        var listed = Assert.Single(await _client.ListAsync(user, CancellationToken.None));
        Assert.Equal((newKey[..9], KeyState.Active), (listed.Prefix, listed.State));
        Assert.InRange(listed.PreviousVersionGraceEndsAt!.Value, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
    }

    private static string KeyRequestProcessorName(Guid requestId) => Gateway.Operator.KeyRequests.KeyRequestProcessor.KeyName("demo", requestId);
}
