using Gateway.Portal.Auth;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Tests.Auth;

public sealed class PasswordAndAuditTests
{
    [Fact]
    public void The_shipped_common_password_list_is_loaded_and_matched_case_insensitively()
    {
        Assert.True(CommonPasswords.Count > 5000);
        Assert.True(CommonPasswords.Contains("Password123456"));
        Assert.True(CommonPasswords.Contains("QWERTYUIOPASDF"));
        Assert.True(CommonPasswords.Contains("Sunshine2026!!"));
        Assert.False(CommonPasswords.Contains("violet staple canyon drum"));
    }

    [Fact]
    public void The_policy_reports_every_broken_rule()
    {
        Assert.Empty(PasswordPolicy.Check("violet staple canyon drum", "violet staple canyon drum", "ada", "ada.l@example.com"));
        Assert.Equal([PasswordProblem.TooShort, PasswordProblem.ContainsLogin], PasswordPolicy.Check("ADA-xyz", null, "ada", "someone@example.com"));
        Assert.Equal([PasswordProblem.ContainsEmail], PasswordPolicy.Check("my name is Lovelace99 ok", null, "ada", "lovelace99@example.com"));
        Assert.Equal([PasswordProblem.Mismatch], PasswordPolicy.Check("violet staple canyon drum", "violet staple canyon", "ada", "a@example.com"));
    }

    [Fact]
    public async Task The_audit_log_is_append_only()
    {
        await using var h = await PortalHarness.StartAsync();
        var user = await h.SeedEnrolledUserAsync("audit");
        using (await h.SignInAsync(user))
        {
        }
        await using var db = h.CreateDbContext();
        Assert.True(await db.AuditLog.AnyAsync(a => a.UserId == user.Id && a.Action == AuditActions.SignIn));
        var update = await Assert.ThrowsAnyAsync<Exception>(() => db.Database.ExecuteSqlRawAsync("UPDATE audit_log SET action = 'forged'"));
        Assert.Contains("append-only", update.Message + update.InnerException?.Message, StringComparison.Ordinal);
        var delete = await Assert.ThrowsAnyAsync<Exception>(() => db.Database.ExecuteSqlRawAsync("DELETE FROM audit_log"));
        Assert.Contains("append-only", delete.Message + delete.InnerException?.Message, StringComparison.Ordinal);
    }
}
