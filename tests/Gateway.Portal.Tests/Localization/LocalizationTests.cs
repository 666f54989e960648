using System.Net;
using Gateway.Portal.Localization;
using Gateway.Portal.Tests.Infrastructure;

namespace Gateway.Portal.Tests.Localization;

public sealed class LocalizationTests : IAsyncLifetime
{
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task The_browser_language_picks_chinese_and_sets_the_lang_attribute()
    {
        using var client = _h.CreateClient();
        client.Http.DefaultRequestHeaders.AcceptLanguage.ParseAdd("zh-CN,zh;q=0.9,en;q=0.5");
        var html = await client.GetPageAsync("/signin");
        Assert.Contains("<html lang=\"zh-CN\"", html, StringComparison.Ordinal);
        Assert.Contains("登录名或电子邮件", html, StringComparison.Ordinal);
        Assert.Contains("跳到主要内容", html, StringComparison.Ordinal);

        using var english = _h.CreateClient();
        english.Http.DefaultRequestHeaders.AcceptLanguage.ParseAdd("en-GB,en;q=0.8");
        var en = await english.GetPageAsync("/signin");
        Assert.Contains("<html lang=\"en\"", en, StringComparison.Ordinal);
        Assert.Contains("Login name or e-mail", en, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_language_switch_is_remembered_in_a_cookie_over_the_browser_language()
    {
        using var client = _h.CreateClient();
        client.Http.DefaultRequestHeaders.AcceptLanguage.ParseAdd("en-US");
        using var r = await client.PostFormAsync("/language", [new("culture", "zh-CN"), new("returnUrl", "/signin")], formPage: "/signin");
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Equal("/signin", r.Headers.Location!.OriginalString);
        Assert.NotNull(client.Cookies.GetCookies(_h.BaseAddress)[PortalLocalization.CookieName]);
        var zh = await client.GetPageAsync("/signin");
        Assert.Contains("<html lang=\"zh-CN\"", zh, StringComparison.Ordinal);
        Assert.Contains("身份验证器验证码或恢复码", zh, StringComparison.Ordinal);

        using var back = await client.PostFormAsync("/language", [new("culture", "en"), new("returnUrl", "https://evil.example/")], formPage: "/signin");
        Assert.Equal("/", back.Headers.Location!.OriginalString);
        Assert.Contains("<html lang=\"en\"", await client.GetPageAsync("/signin"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Signed_in_pages_and_enrolment_are_translated_too()
    {
        var user = await _h.SeedEnrolledUserAsync("mei");
        using var client = await _h.SignInAsync(user);
        client.Http.DefaultRequestHeaders.AcceptLanguage.ParseAdd("zh-CN");
        var home = await client.GetPageAsync("/");
        Assert.Contains(">密钥</a>", home, StringComparison.Ordinal);
        Assert.Contains("退出登录", home, StringComparison.Ordinal);

        var invited = await _h.SeedInvitedUserAsync("lin");
        using var enrol = _h.CreateClient();
        enrol.Http.DefaultRequestHeaders.AcceptLanguage.ParseAdd("zh-CN");
        using var r = await enrol.GetAsync(invited.InvitePath);
        Assert.Contains("第 1 步（共 3 步）：设置密码", await enrol.GetPageAsync("/enrol"), StringComparison.Ordinal);
        using var gone = await enrol.GetAsync("/invite/unknown-token");
        Assert.Contains("此邀请链接无效", await gone.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_page_has_a_skip_link_to_the_main_landmark_and_labelled_inputs()
    {
        using var client = _h.CreateClient();
        var html = await client.GetPageAsync("/signin");
        Assert.Contains("<a class=\"skip-link\" href=\"#main\">", html, StringComparison.Ordinal);
        Assert.Contains("<main id=\"main\"", html, StringComparison.Ordinal);
        foreach (var id in new[] { "login", "password", "code" })
        {
            Assert.Contains($"<label for=\"{id}\">", html, StringComparison.Ordinal);
            Assert.Contains($"id=\"{id}\"", html, StringComparison.Ordinal);
        }
        Assert.Contains("name=\"viewport\"", html, StringComparison.Ordinal);
    }
}
