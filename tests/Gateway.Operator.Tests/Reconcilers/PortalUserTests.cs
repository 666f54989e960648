using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Reconcilers;

/// <summary>What the operator stores and reports for the portal: the role from GitOps and the enrolment the portal completes.</summary>
public sealed class PortalUserTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;

    public async Task InitializeAsync() => _f = await OperatorFixture.CreateAsync();

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private static string UserQuota(string role) => $"""
        apiVersion: tokengate.io/v1alpha1
        kind: UserQuota
        metadata:
          name: ada
          namespace: default
        spec:
          user:
            name: ada
            email: ada@example.com
          portal:
            role: {role}
        """;

    [Fact]
    public async Task The_portal_role_from_the_user_quota_reaches_the_users_row()
    {
        _f.WriteManifest("uq.yaml", UserQuota("admin"));
        await _f.Driver.PassAsync(CancellationToken.None);
        await using (var db = _f.Db())
        {
            Assert.Equal(PortalRoles.Admin, (await db.Users.AsNoTracking().SingleAsync()).PortalRole);
        }
        _f.WriteManifest("uq.yaml", UserQuota("user"));
        await _f.Driver.PassAsync(CancellationToken.None);
        await using (var db = _f.Db())
        {
            Assert.Equal(PortalRoles.User, (await db.Users.AsNoTracking().SingleAsync()).PortalRole);
        }
    }

    [Fact]
    public async Task After_enrolment_in_the_portal_the_status_says_enrolled_the_invite_secret_goes_and_no_new_invite_is_issued()
    {
        _f.WriteManifest("uq.yaml", UserQuota("user"));
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.NotNull(await _f.Source.GetSecretAsync("default", "ada-invite", CancellationToken.None));
        Assert.Equal("Invited", _f.Source.ReadStatus<UserQuotaStatus>("UserQuota", "default", "ada")!.Enrollment);

        // What the portal's enrolment does to the row.
        await using (var db = _f.Db())
        {
            await db.Users.ExecuteUpdateAsync(u => u.SetProperty(x => x.Enrollment, "Enrolled").SetProperty(x => x.InviteTokenHash, (string?)null));
        }
        await _f.Driver.PassAsync(CancellationToken.None);
        await _f.Driver.PassAsync(CancellationToken.None);

        Assert.Equal("Enrolled", _f.Source.ReadStatus<UserQuotaStatus>("UserQuota", "default", "ada")!.Enrollment);
        Assert.Null(await _f.Source.GetSecretAsync("default", "ada-invite", CancellationToken.None));
        await using var check = _f.Db();
        Assert.Null((await check.Users.AsNoTracking().SingleAsync()).InviteTokenHash);
    }
}
