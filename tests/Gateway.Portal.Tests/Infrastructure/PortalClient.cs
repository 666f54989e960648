using System.Net;
using System.Text.RegularExpressions;

namespace Gateway.Portal.Tests.Infrastructure;

/// <summary>
/// A browser-like client for one portal instance: a cookie jar, no automatic redirects, and helpers
/// that submit forms with the antiforgery token scraped from a page, as a browser would.
/// </summary>
public sealed partial class PortalClient : IDisposable
{
    public PortalClient(Uri baseAddress, CookieContainer? cookies = null)
    {
        Cookies = cookies ?? new CookieContainer();
        BaseAddress = baseAddress;
        Http = new HttpClient(new HttpClientHandler
        {
            AllowAutoRedirect = false,
            UseCookies = true,
            CookieContainer = Cookies,
            ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator,
        })
        { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public HttpClient Http { get; }
    public CookieContainer Cookies { get; }
    public Uri BaseAddress { get; }

    /// <summary>A client for another instance (e.g. a second replica) that shares this client's cookies.</summary>
    public PortalClient SharingCookiesWith(Uri otherBaseAddress) => new(otherBaseAddress, Cookies);

    public Task<HttpResponseMessage> GetAsync(string path) => Http.GetAsync(path);

    /// <summary>GETs a page and returns its HTML, failing unless the status is 200.</summary>
    public async Task<string> GetPageAsync(string path)
    {
        using var r = await Http.GetAsync(path);
        var html = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"GET {path} answered {(int)r.StatusCode}: {Truncate(html)}");
        return html;
    }

    /// <summary>
    /// Submits a form like a browser: GETs <paramref name="formPage"/> (default: <paramref name="path"/>),
    /// takes its antiforgery token and POSTs <paramref name="fields"/> with it to <paramref name="path"/>.
    /// </summary>
    public async Task<HttpResponseMessage> PostFormAsync(string path, IEnumerable<KeyValuePair<string, string>> fields, string? formPage = null)
    {
        var token = await GetAntiforgeryTokenAsync(formPage ?? StripQuery(path));
        return await PostFormWithTokenAsync(path, fields, token);
    }

    /// <summary>POSTs with an explicit token (null: none at all).</summary>
    public Task<HttpResponseMessage> PostFormWithTokenAsync(string path, IEnumerable<KeyValuePair<string, string>> fields, string? token)
    {
        var all = fields.ToList();
        if (token is not null) all.Add(new("__RequestVerificationToken", token));
        return Http.PostAsync(path, new FormUrlEncodedContent(all));
    }

    /// <summary>The antiforgery token of the first form on a page.</summary>
    public async Task<string> GetAntiforgeryTokenAsync(string page)
    {
        using var r = await Http.GetAsync(page);
        var html = await r.Content.ReadAsStringAsync();
        return FindAntiforgeryToken(html) ?? throw new InvalidOperationException($"GET {page} ({(int)r.StatusCode}) has no antiforgery token: {Truncate(html)}");
    }

    public static string? FindAntiforgeryToken(string html)
    {
        var m = TokenPattern().Match(html);
        return m.Success ? WebUtility.HtmlDecode(m.Groups[1].Value) : null;
    }

    /// <summary>The text content of the element with the given id (tags removed, entities decoded).</summary>
    public static string? ElementText(string html, string id)
    {
        var m = Regex.Match(html, "<(\\w+)[^>]*\\bid=\"" + Regex.Escape(id) + "\"[^>]*>(.*?)</\\1>", RegexOptions.Singleline);
        return m.Success ? WebUtility.HtmlDecode(TagPattern().Replace(m.Groups[2].Value, " ")).Trim() : null;
    }

    public void Dispose() => Http.Dispose();

    private static string StripQuery(string path) => path.Split('?', 2)[0];

    private static string Truncate(string s) => s.Length > 2000 ? s[..2000] + "…" : s;

    [GeneratedRegex("name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"")]
    private static partial Regex TokenPattern();

    [GeneratedRegex("<[^>]+>")]
    private static partial Regex TagPattern();
}
