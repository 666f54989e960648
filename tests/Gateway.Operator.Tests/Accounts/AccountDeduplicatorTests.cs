using Gateway.Operator.Accounts;

namespace Gateway.Operator.Tests.Accounts;

public sealed class AccountDeduplicatorTests
{
    private static ImportedAccount A(string file, string type = "codex", string? email = null, string? id = null, int? expiresDay = null, int? refreshedDay = null) =>
        new(file, type, email, id, "FAKE-access-" + file, "FAKE-refresh-" + file, null,
            expiresDay is { } e ? new DateTimeOffset(2099, 12, e, 0, 0, 0, TimeSpan.Zero) : null,
            refreshedDay is { } r ? new DateTimeOffset(2099, 11, r, 0, 0, 0, TimeSpan.Zero) : null);

    [Fact]
    public void Files_of_the_same_account_id_merge_and_the_latest_expiry_wins_whatever_the_order()
    {
        var older = A("a-old.json", email: "a@example.com", id: "acct-1", expiresDay: 1);
        var newer = A("z-new.json", email: "a@example.com", id: "acct-1", expiresDay: 20);
        foreach (var input in new[] { new[] { older, newer }, [newer, older] })
        {
            var (accounts, merges) = AccountDeduplicator.Merge(input);
            Assert.Same(newer, Assert.Single(accounts));
            var merge = Assert.Single(merges);
            Assert.Same(newer, merge.Kept);
            Assert.Same(older, Assert.Single(merge.Dropped));
            Assert.Contains("merged a-old.json into z-new.json", merge.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Same_email_in_another_case_is_the_same_account_and_last_refresh_breaks_a_tie()
    {
        var x = A("x.json", email: "Bob@Example.com", expiresDay: 5, refreshedDay: 1);
        var y = A("y.json", email: "bob@example.com", expiresDay: 5, refreshedDay: 9);
        var (accounts, merges) = AccountDeduplicator.Merge([x, y]);
        Assert.Same(y, Assert.Single(accounts));
        Assert.Single(merges);
    }

    [Fact]
    public void A_file_with_an_expiry_beats_one_without_and_merging_is_transitive()
    {
        // b shares the id with a and the e-mail with c: all three are one account.
        var a = A("a.json", id: "acct-9");
        var b = A("b.json", email: "c@example.com", id: "acct-9", expiresDay: 3);
        var c = A("c.json", email: "C@example.com");
        var (accounts, merges) = AccountDeduplicator.Merge([a, b, c]);
        Assert.Same(b, Assert.Single(accounts));
        Assert.Equal(["a.json", "c.json"], Assert.Single(merges).Dropped.Select(d => d.SourceFile).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Different_types_or_different_identities_are_never_merged()
    {
        var codex = A("codex.json", "codex", email: "d@example.com", id: "acct-d");
        var claude = A("claude.json", "claude", email: "d@example.com");
        var other = A("other.json", "codex", email: "e@example.com", id: "acct-e");
        var (accounts, merges) = AccountDeduplicator.Merge([codex, claude, other]);
        Assert.Equal(3, accounts.Count);
        Assert.Empty(merges);
    }
}
