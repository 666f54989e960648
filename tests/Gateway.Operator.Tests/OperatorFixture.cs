using System.Text;
using Gateway.Core.Keys;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Storage;
using Gateway.Operator.Projection;
using Gateway.Operator.Reconcilers;
using Gateway.Operator.Sources;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Tests;

/// <summary>Real PostgreSQL (throw-away database) and Redis (unique prefix) wired to the real reconciler.</summary>
public sealed class OperatorFixture : IAsyncDisposable
{
    public const string Pepper = "test-pepper-0123456789abcdef";

    private OperatorFixture(TestDatabase db, RespClient redis, string folder, string stateDir)
    {
        Database = db;
        Redis = redis;
        Keys = new ProjectionKeys(TestEnvironment.UniqueRedisPrefix());
        Hasher = new KeyHasher(Encoding.UTF8.GetBytes(Pepper));
        Folder = folder;
        StateDir = stateDir;
        DbFactory = new PooledDbContextFactory<TokenGateDbContext>(
            new DbContextOptionsBuilder<TokenGateDbContext>().UseNpgsql(db.ConnectionString)
                .ConfigureWarnings(w => w.Ignore(Microsoft.EntityFrameworkCore.Diagnostics.RelationalEventId.PendingModelChangesWarning)).Options);
        Projection = new ProjectionWriter(redis, Keys, TestCredentialKeys.Protector);
        Reconciler = new TokenGateReconciler(DbFactory, Projection, Hasher, Options.Create(new OperatorOptions()), TimeProvider.System, NullLogger<TokenGateReconciler>.Instance);
        Source = new FileResourceSource(folder, stateDir);
        DataSource = Npgsql.NpgsqlDataSource.Create(db.ConnectionString);
        Seeder = new ProjectionSeeder(redis, Keys, Projection, DataSource, Gate, TimeProvider.System, NullLogger<ProjectionSeeder>.Instance);
        Driver = new FileSourceDriver(Source, Reconciler, Projection, Options.Create(new OperatorOptions()), NullLogger<FileSourceDriver>.Instance, Seeder);
    }

    /// <summary>What the ledger writer and a rebuild of the projection share (see <see cref="ProjectionSeeder"/>).</summary>
    public ProjectionRebuildGate Gate { get; } = new();
    public Npgsql.NpgsqlDataSource DataSource { get; }
    public ProjectionSeeder Seeder { get; }

    public TestDatabase Database { get; }
    public RespClient Redis { get; }
    public ProjectionKeys Keys { get; }
    public KeyHasher Hasher { get; }
    public string Folder { get; }
    public string StateDir { get; }
    public IDbContextFactory<TokenGateDbContext> DbFactory { get; }
    public ProjectionWriter Projection { get; }
    public TokenGateReconciler Reconciler { get; }
    public FileResourceSource Source { get; }
    public FileSourceDriver Driver { get; }

    public static async Task<OperatorFixture> CreateAsync()
    {
        var db = await TestDatabase.CreateAsync();
        await StorageServiceCollectionExtensions.MigrateAsync(db.ConnectionString);
        var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        var root = Path.Combine(Path.GetTempPath(), "tg-op-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(root, "samples"));
        return new OperatorFixture(db, redis, Path.Combine(root, "samples"), Path.Combine(root, "state"));
    }

    public void WriteManifest(string file, string yaml) => File.WriteAllText(Path.Combine(Folder, file), yaml);

    public void DeleteManifest(string file) => File.Delete(Path.Combine(Folder, file));

    /// <summary>Copies the repository's config/samples into the test folder.</summary>
    public void CopyRepositorySamples()
    {
        foreach (var f in Directory.GetFiles(RepoPaths.Samples, "*.yaml")) File.Copy(f, Path.Combine(Folder, Path.GetFileName(f)));
    }

    public TokenGateDbContext Db() => DbFactory.CreateDbContext();

    public async ValueTask DisposeAsync()
    {
        await Redis.DisposeAsync();
        await DataSource.DisposeAsync();
        await Database.DisposeAsync();
        try { Directory.Delete(Path.GetDirectoryName(Folder)!, recursive: true); } catch (IOException) { }
    }
}
