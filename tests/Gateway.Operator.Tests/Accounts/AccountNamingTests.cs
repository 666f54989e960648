using System.Text.RegularExpressions;
using Gateway.Core.Resources;
using Gateway.Operator.Accounts;

namespace Gateway.Operator.Tests.Accounts;

public sealed class AccountNamingTests
{
    private static readonly Regex DnsLabel = new("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");

    [Theory]
    [InlineData("codex", "alice@example.com", "codex-alice-example-com")]
    [InlineData("claude", "Carol.O'Neil+work@Example.CO.uk", "claude-carol-o-neil-work-example-co-uk")]
    [InlineData("codex", "acct_ABC-123", "codex-acct-abc-123")]
    [InlineData("codex", "renée@exämple.com", "codex-ren-e-ex-mple-com")]
    public void Names_are_readable_and_dns_safe(string type, string identity, string expected)
    {
        Assert.Equal(expected, AccountNaming.Name(type, identity));
        Assert.Matches(new Regex(SchemaPatterns.ObjectName), expected);
    }

    [Fact]
    public void Long_identities_are_cut_with_a_stable_hash_and_the_secret_name_stays_a_label()
    {
        var id = new string('x', 40) + "@" + new string('y', 40) + ".example.com";
        var name = AccountNaming.Name("codex", id);
        Assert.True(name.Length <= AccountNaming.MaxLength);
        Assert.Equal(name, AccountNaming.Name("codex", id));
        Assert.NotEqual(name, AccountNaming.Name("codex", id.Replace("@", "@z", StringComparison.Ordinal)));
        Assert.Matches(DnsLabel, name);
        Assert.Matches(DnsLabel, AccountNaming.SecretName(name));
        Assert.True(AccountNaming.SecretName(name).Length <= 63);
    }

    [Fact]
    public void Identities_that_sanitize_alike_get_distinct_names_on_import()
    {
        var dir = Directory.CreateTempSubdirectory("tg-import-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "1.json"), """{"type":"codex","email":"a.b@example.com","access_token":"FAKE-1","refresh_token":"FAKE-r1"}""");
            File.WriteAllText(Path.Combine(dir, "2.json"), """{"type":"codex","email":"a-b@example.com","access_token":"FAKE-2","refresh_token":"FAKE-r2"}""");
            var (files, _) = AccountImporter.Expand([dir]);
            var result = AccountImporter.Import(files, new ImportSettings());
            var names = result.Manifests.Select(m => m.Name).ToList();
            Assert.Equal(2, names.Distinct(StringComparer.Ordinal).Count());
            Assert.All(names, n => Assert.StartsWith("codex-a-b-example-com-", n, StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
