using Gateway.Testing;
using Microsoft.Playwright;

namespace Gateway.Portal.BrowserTests.Infrastructure;

/// <summary>
/// Debian's Chromium (/usr/bin/chromium, installed by .ci/run; TG_CHROMIUM overrides the path) driven headless by
/// Playwright's bundled driver: no browser download. Playwright gives each launch a fresh temporary profile
/// (user-data dir) and removes it on close. Saves screenshots of pages at desktop and phone sizes under
/// .data/test-results/screenshots/.
/// </summary>
public sealed class ChromiumBrowser : IAsyncDisposable
{
    public static readonly string ExecutablePath = Environment.GetEnvironmentVariable("TG_CHROMIUM") ?? "/usr/bin/chromium";
    public static readonly string ScreenshotDir = Path.Combine(RepoPaths.Root, ".data", "test-results", "screenshots");
    private static readonly ViewportSize Desktop = new() { Width = 1280, Height = 800 };
    private static readonly ViewportSize Phone = new() { Width = 390, Height = 844 };

    private readonly IPlaywright _playwright;

    private ChromiumBrowser(IPlaywright playwright, IBrowser browser)
    {
        _playwright = playwright;
        Browser = browser;
    }

    public IBrowser Browser { get; }

    public static async Task<ChromiumBrowser> LaunchAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException(
                $"Chromium is not installed at {ExecutablePath}: the browser tests need Debian's chromium package (`sudo apt-get install -y chromium`; .ci/run installs it), or set TG_CHROMIUM to a Chromium binary.");
        }
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                Timeout = 60_000,
                Args =
                [
                    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    // Containers often have a small /dev/shm; Chromium then crashes tabs unless it uses /tmp.
                    "--disable-dev-shm-usage",
                ],
            });
            return new ChromiumBrowser(playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>A fresh context (own cookies) at desktop size, English, with generous timeouts for a loaded machine.</summary>
    public async Task<IPage> NewPageAsync(Uri baseUrl)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseUrl.ToString(),
            ViewportSize = Desktop,
            Locale = "en-US",
            AcceptDownloads = true,
        });
        context.SetDefaultTimeout(60_000);
        context.SetDefaultNavigationTimeout(60_000);
        return await context.NewPageAsync();
    }

    /// <summary>Saves <c>{name}-desktop.png</c> (1280×800) and <c>{name}-mobile.png</c> (390×844) of the page as it is.</summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        Directory.CreateDirectory(ScreenshotDir);
        await page.SetViewportSizeAsync(Desktop.Width, Desktop.Height);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ScreenshotDir, name + "-desktop.png") });
        await page.SetViewportSizeAsync(Phone.Width, Phone.Height);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ScreenshotDir, name + "-mobile.png") });
        await page.SetViewportSizeAsync(Desktop.Width, Desktop.Height);
    }

    /// <summary>After a failure: the page each open tab shows, for the test artifacts.</summary>
    public async Task ScreenshotOpenPagesAsync(string name)
    {
        var i = 0;
        foreach (var page in Browser.Contexts.SelectMany(c => c.Pages).ToList())
        {
            try
            {
                await ScreenshotAsync(page, $"{name}-{++i}");
            }
            catch (PlaywrightException)
            {
                // The tab may be gone; the test's own failure is what matters.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.CloseAsync();
        _playwright.Dispose();
    }
}
