using System.Net;
using System.Text.RegularExpressions;
using Gateway.Portal.Tests.Infrastructure;

namespace Gateway.Portal.Tests.Security;

/// <summary>Assertions and form helpers shared by the Security page tests.</summary>
internal static partial class SecurityTestHelpers
{
    public static async Task AssertSignedInAsync(PortalClient client)
    {
        using var r = await client.GetAsync("/security");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    public static async Task AssertSignedOutAsync(PortalClient client)
    {
        using var r = await client.GetAsync("/security");
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Contains("/signin", r.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }

    public static Task<HttpResponseMessage> PostSignInAsync(PortalClient client, string login, string password, string code) =>
        client.PostFormAsync("/signin", [new("Login", login), new("Password", password), new("Code", code)]);

    /// <summary>The value of a named (hidden) input in a page.</summary>
    public static string? InputValue(string html, string name)
    {
        var m = Regex.Match(html, "<input[^>]*name=\"" + Regex.Escape(name) + "\"[^>]*value=\"([^\"]*)\"");
        return m.Success ? WebUtility.HtmlDecode(m.Groups[1].Value) : null;
    }

    /// <summary>The codes inside &lt;ul id="recovery-codes"&gt;.</summary>
    public static IReadOnlyList<string> RecoveryCodes(string html)
    {
        var list = Regex.Match(html, "<ul[^>]*id=\"recovery-codes\"[^>]*>(.*?)</ul>", RegexOptions.Singleline);
        Assert.True(list.Success, "The page shows no recovery codes.");
        return CodePattern().Matches(list.Groups[1].Value).Select(m => m.Groups[1].Value).ToList();
    }

    [GeneratedRegex("<code>([^<]+)</code>")]
    private static partial Regex CodePattern();
}
