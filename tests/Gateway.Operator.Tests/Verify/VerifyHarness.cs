using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Gateway.Operator.Ledger;
using Gateway.Operator.Verify;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Operator.Tests.Verify;

/// <summary>The sample user reconciled into a throw-away database and Redis prefix, money moved through the real
/// Enforcer scripts and ledger writer, and the verify command run in-process against it.</summary>
internal sealed class VerifyHarness : IAsyncDisposable
{
    private VerifyHarness(OperatorFixture f, KeyProjection key, UserProjection user)
    {
        F = f;
        Key = key;
        User = user;
        Enforcer = new Enforcer(f.Redis, f.Keys);
    }

    public OperatorFixture F { get; }
    public KeyProjection Key { get; }
    public UserProjection User { get; }
    public Enforcer Enforcer { get; }
    public string UserId => User.UserId;

    public static async Task<VerifyHarness> CreateAsync()
    {
        var f = await OperatorFixture.CreateAsync();
        f.CopyRepositorySamples();
        await f.Driver.PassAsync(CancellationToken.None);
        await using var db = f.Db();
        var userId = (await db.Users.SingleAsync()).Id.ToString();
        var keyHash = (await db.ApiKeyVersions.SingleAsync()).KeyHash.Trim();
        var key = JsonSerializer.Deserialize<KeyProjection>((await f.Redis.ExecuteAsync("GET", [f.Keys.Key(keyHash)])).AsString()!, TokenGateJson.Options)!;
        var user = JsonSerializer.Deserialize<UserProjection>((await f.Redis.ExecuteAsync("GET", [f.Keys.User(userId)])).AsString()!, TokenGateJson.Options)!;
        // Without the sample's request and concurrency limits, so a test may send as many requests as it likes.
        return new VerifyHarness(f, key, user with { Limits = null });
    }

    /// <summary>Admits a request as the proxy does; <paramref name="enforcer"/> may run on another clock.</summary>
    public async Task<Reservation> AdmitAsync(string requestId, long reservedMicros, TimeSpan? lease = null, Enforcer? enforcer = null)
    {
        var admitted = await (enforcer ?? Enforcer).AdmitAsync(new AdmissionRequest
        {
            RequestId = requestId,
            Key = Key,
            User = User,
            ReservedMicros = reservedMicros,
            EstimatedInputTokens = 10,
            MaxOutputTokens = 20,
            Model = "gpt-4o-mini",
            Route = "/v1/chat/completions",
            Lease = lease,
        });
        Assert.True(admitted.Allowed, $"admission of {requestId}: {admitted.Reason}");
        return admitted.Reservation!;
    }

    public UsageEvent Usage(string requestId, decimal cost, int status = 200) => new()
    {
        RequestId = requestId,
        KeyId = Key.KeyId,
        KeyVersion = Key.Version,
        UserId = UserId,
        Upstream = "default/mock",
        Model = "gpt-4o-mini",
        Route = "/v1/chat/completions",
        Tokens = cost > 0 ? new TokenCounts(7, 0, 0, 11) : default,
        Cost = cost,
        PriceVersion = "test",
        StartedAt = DateTimeOffset.UtcNow,
        Status = status,
    };

    /// <summary>A whole request: admission, then settlement at <paramref name="cost"/> (usage event into the stream).</summary>
    public async Task RequestAsync(string requestId, decimal cost, int status = 200)
    {
        var r = await AdmitAsync(requestId, 100_000);
        Assert.Equal(SettleOutcome.Settled, await Enforcer.SettleAsync(new Settlement { Reservation = r, Usage = Usage(requestId, cost, status) }));
    }

    /// <summary>Runs the real ledger writer until usage_log holds <paramref name="rows"/> rows and the stream is empty.</summary>
    public async Task PersistAsync(int rows)
    {
        var writer = new LedgerWriter(F.Redis, NpgsqlDataSource.Create(F.Database.ConnectionString), F.Keys,
            Options.Create(new LedgerOptions { ConsumerName = "verify-test", Block = TimeSpan.FromMilliseconds(100), Linger = TimeSpan.Zero }),
            NullLogger<LedgerWriter>.Instance);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                await using var db = F.Db();
                return await db.UsageLog.CountAsync() == rows && await ShardedRedis.UsageLengthAsync(F.Redis, F.Keys) == 0;
            }, $"{rows} usage rows persisted and the stream drained");
        }
        finally { await writer.StopAsync(CancellationToken.None); }
    }

    public async Task SqlAsync(string sql)
    {
        await using var conn = new NpgsqlConnection(F.Database.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    public Task<RespValue> RedisAsync(string command, params RedisArg[] args) => F.Redis.ExecuteAsync(command, args);

    public string[] ConfigArgs(string? postgres = null, string? redis = null) =>
    [
        "--ConnectionStrings:Postgres", postgres ?? F.Database.ConnectionString,
        "--ConnectionStrings:Redis", redis ?? TestEnvironment.Redis,
        "--TokenGate:Redis:KeyPrefix", F.Keys.Prefix,
    ];

    /// <summary>Runs <c>verify --json</c> through the command; a quiet system needs no settle wait.</summary>
    public async Task<VerifyRun> VerifyAsync(params string[] extra)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await VerifyCommand.RunAsync(["verify", "--json", "--settle-wait", "0", .. extra, .. ConfigArgs()], stdout, stderr);
        Assert.True(code is 0 or 1, $"verify exited {code}: {stderr}");
        return new VerifyRun(code, JsonDocument.Parse(stdout.ToString()).RootElement.Clone());
    }

    public async ValueTask DisposeAsync() => await F.DisposeAsync();
}

/// <summary>A verify run's exit code and JSON report.</summary>
internal sealed record VerifyRun(int ExitCode, JsonElement Json)
{
    public long Count(string name) => Json.GetProperty("counts").GetProperty(name).GetInt64();

    public IReadOnlyList<JsonElement> Violations(string kind) =>
        Json.GetProperty("violations").EnumerateArray().Where(v => v.GetProperty("kind").GetString() == kind).ToList();

    public IReadOnlyList<string> Kinds() =>
        Json.GetProperty("violationCounts").EnumerateObject().Select(p => p.Name).ToList();

    public override string ToString() => Json.ToString();
}
