using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gateway.Core.Storage;
using Gateway.Core.Totp;
using Gateway.Portal.Auth;
using Gateway.Portal.Hosting;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Portal.Tests.Infrastructure;

/// <summary>Settings for one portal instance started by <see cref="PortalHarness"/>.</summary>
public sealed record PortalHarnessOptions
{
    /// <summary>Extra configuration, e.g. <c>["TokenGate:Portal:SessionIdleTimeout"] = "00:10:00"</c>.</summary>
    public IReadOnlyDictionary<string, string?> Configuration { get; init; } = new Dictionary<string, string?>();

    /// <summary>Anything else to change on the builder (services, logging) before the portal composes itself.</summary>
    public Action<WebApplicationBuilder>? ConfigureBuilder { get; init; }

    /// <summary>Serve HTTPS (self-signed certificate) instead of HTTP.</summary>
    public bool Https { get; init; }
}

/// <summary>
/// Starts the real portal on 127.0.0.1:0 against a throw-away PostgreSQL database (migrated), with a
/// clock tests can move forward and a log capture. Seeds users through the real schema and signs them
/// in through the real sign-in form.
/// <code>
/// await using var h = await PortalHarness.StartAsync();
/// var user = await h.SeedEnrolledUserAsync("alice");
/// using var client = await h.SignInAsync(user);
/// var html = await client.GetPageAsync("/");
/// </code>
/// A second instance on the same database (another replica): <c>await using var b = await h.StartPeerAsync();</c>.
/// </summary>
public sealed class PortalHarness : IAsyncDisposable
{
    private readonly TestDatabase? _ownedDatabase;

    private PortalHarness(WebApplication app, string connectionString, string redisPrefix, TestDatabase? ownedDatabase, ShiftedTimeProvider time, CapturingLoggerProvider logs, Uri baseAddress)
    {
        RedisPrefix = redisPrefix;
        App = app;
        ConnectionString = connectionString;
        _ownedDatabase = ownedDatabase;
        Time = time;
        Logs = logs;
        BaseAddress = baseAddress;
    }

    public WebApplication App { get; }
    public IServiceProvider Services => App.Services;
    public string ConnectionString { get; }
    /// <summary>The Redis key prefix this instance (and its peers) use: <c>ConnectionStrings:Redis</c> and <c>TokenGate:Redis:KeyPrefix</c> are set.</summary>
    public string RedisPrefix { get; }
    /// <summary>The portal's clock (real time plus an offset): <c>h.Time.Advance(TimeSpan.FromMinutes(16))</c>.</summary>
    public ShiftedTimeProvider Time { get; }
    /// <summary>Every log line this instance wrote.</summary>
    public CapturingLoggerProvider Logs { get; }
    public Uri BaseAddress { get; }

    public static Task<PortalHarness> StartAsync(PortalHarnessOptions? options = null) => StartAsync(options, database: null, time: null);

    /// <summary>Starts with extra configuration.</summary>
    public static Task<PortalHarness> StartAsync(IReadOnlyDictionary<string, string?> configuration) =>
        StartAsync(new PortalHarnessOptions { Configuration = configuration });

    /// <summary>Another portal instance (replica) on the same database and clock; disposing it leaves the database alone.</summary>
    public Task<PortalHarness> StartPeerAsync(PortalHarnessOptions? options = null) => StartAsync(options, ConnectionString, Time, RedisPrefix);

    private static async Task<PortalHarness> StartAsync(PortalHarnessOptions? options, string? database, ShiftedTimeProvider? time, string? redisPrefix = null)
    {
        redisPrefix ??= TestEnvironment.UniqueRedisPrefix();
        options ??= new PortalHarnessOptions();
        TestDatabase? owned = null;
        if (database is null)
        {
            owned = await TestDatabase.CreateAsync();
            await StorageServiceCollectionExtensions.MigrateAsync(owned.ConnectionString);
            database = owned.ConnectionString;
        }
        time ??= new ShiftedTimeProvider();
        var logs = new CapturingLoggerProvider();
        var config = new Dictionary<string, string?>
        {
            // Tests sign in often from 127.0.0.1; the limiter gets its own test with a small limit.
            ["TokenGate:Portal:AuthPostsPerMinute"] = "100000",
            ["ConnectionStrings:Redis"] = TestEnvironment.Redis,
            ["TokenGate:Redis:KeyPrefix"] = redisPrefix,
        };
        foreach (var (k, v) in options.Configuration) config[k] = v;
        var scheme = options.Https ? "https" : "http";
        var app = PortalApp.Build(["--urls", $"{scheme}://127.0.0.1:0", "--ConnectionStrings:Postgres", database], builder =>
        {
            builder.Configuration.AddInMemoryCollection(config);
            builder.Services.AddSingleton<TimeProvider>(time);
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Information);
            builder.Logging.AddProvider(logs);
            if (options.Https)
            {
                var cert = SelfSignedCertificate();
                builder.WebHost.ConfigureKestrel(k => k.ConfigureHttpsDefaults(h => h.ServerCertificate = cert));
            }
            options.ConfigureBuilder?.Invoke(builder);
        });
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            if (owned is not null) await owned.DisposeAsync();
            throw;
        }
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new PortalHarness(app, database, redisPrefix, owned, time, logs, new Uri(url));
    }

    /// <summary>A fresh, anonymous browser-like client for this instance.</summary>
    public PortalClient CreateClient() => new(BaseAddress);

    public TokenGateDbContext CreateDbContext() => StorageServiceCollectionExtensions.CreateContext(ConnectionString);

    /// <summary>
    /// Creates an enrolled user through the real schema: users row (Enrolled, PBKDF2 password hash,
    /// TOTP secret protected with the portal's data protection) and ten hashed recovery codes.
    /// </summary>
    public async Task<SeededUser> SeedEnrolledUserAsync(string login, bool admin = false, string? email = null, string? password = null, string @namespace = "default")
    {
        var credentials = Services.GetRequiredService<Credentials>();
        var id = Guid.NewGuid();
        email ??= login + "@example.test";
        password ??= "Seeded passphrase " + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var secret = TotpService.GenerateBase32Secret();
        var codes = Credentials.NewRecoveryCodes();
        var now = DateTimeOffset.UtcNow;
        await using var db = CreateDbContext();
        db.Users.Add(new UserRow
        {
            Id = id, Namespace = @namespace, Name = login, Login = login, Email = email, DisplayName = login,
            PasswordHash = credentials.HashPassword(password),
            TotpSecretProtected = credentials.ProtectTotpSecret(secret),
            Enrollment = "Enrolled",
            PortalRole = admin ? PortalClaims.AdminRole : "user",
            CreatedAt = now, UpdatedAt = now,
        });
        await db.SaveChangesAsync();
        foreach (var c in codes) db.RecoveryCodes.Add(new RecoveryCodeRow { UserId = id, CodeHash = Credentials.HashRecoveryCode(id, c), CreatedAt = now });
        await db.SaveChangesAsync();
        return new SeededUser(id, login, email, password, secret, codes, admin);
    }

    /// <summary>Creates an invited user as the operator does (users row + SHA-256 of a random invite token).</summary>
    public async Task<InvitedUser> SeedInvitedUserAsync(string login, string? email = null, TimeSpan? validFor = null)
    {
        var id = Guid.NewGuid();
        email ??= login + "@example.test";
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var now = Time.GetUtcNow();
        await using var db = CreateDbContext();
        db.Users.Add(new UserRow
        {
            Id = id, Namespace = "default", Name = login, Login = login, Email = email, DisplayName = login + " (display)",
            InviteTokenHash = EnrolmentService.HashInviteToken(token),
            InviteExpiresAt = now + (validFor ?? TimeSpan.FromDays(7)),
            CreatedAt = now, UpdatedAt = now,
        });
        await db.SaveChangesAsync();
        return new InvitedUser(id, login, email, token);
    }

    /// <summary>
    /// A TOTP code the portal will accept for <paramref name="user"/> now: a step newer than the last
    /// accepted one (moving the clock forward when needed), inside the verifier's ±1-step window.
    /// </summary>
    public async Task<string> NextTotpCodeAsync(Guid userId, string base32Secret)
    {
        await using var db = CreateDbContext();
        var last = await db.Users.Where(u => u.Id == userId).Select(u => u.TotpLastStep).SingleAsync();
        var totp = new TotpService(Time);
        var now = totp.CurrentTimeStep();
        var step = Math.Max(now, (last ?? long.MinValue) + 1);
        if (step > now + 1) Time.Advance(TimeSpan.FromSeconds(totp.Parameters.PeriodSeconds * (step - now - 1)));
        return totp.ComputeCodeForStep(Base32.Decode(base32Secret), step);
    }

    /// <summary>Signs in through the real form (login, password, TOTP code) and returns the signed-in client.</summary>
    public async Task<PortalClient> SignInAsync(SeededUser user, PortalClient? client = null)
    {
        ArgumentNullException.ThrowIfNull(user);
        client ??= CreateClient();
        var code = await NextTotpCodeAsync(user.Id, user.TotpSecret);
        using var r = await client.PostFormAsync("/signin", [new("Login", user.Login), new("Password", user.Password), new("Code", code)]);
        if (r.StatusCode != HttpStatusCode.Redirect)
        {
            throw new InvalidOperationException($"Sign-in of {user.Login} answered {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
        }
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await App.DisposeAsync();
        if (_ownedDatabase is not null) await _ownedDatabase.DisposeAsync();
    }

    private static X509Certificate2 SelfSignedCertificate()
    {
        using var rsa = RSA.Create(2048);
        var req = new CertificateRequest("CN=127.0.0.1", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        req.CertificateExtensions.Add(san.Build());
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        // Round-trip through PFX so the private key is usable by the TLS stack on every platform.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx), null);
    }
}
