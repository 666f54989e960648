namespace Gateway.Portal.Tests.Infrastructure;

/// <summary>Facts about rendered pages that do not depend on any one page's content.</summary>
public static class PortalPages
{
    /// <summary>True when the layout shows <paramref name="login"/> as the signed-in user (next to "Sign out").</summary>
    public static bool ShowsSignedIn(string html, string login) =>
        html.Contains("<span class=\"who\">" + System.Net.WebUtility.HtmlEncode(login) + "</span>", StringComparison.Ordinal);
}
