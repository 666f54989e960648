using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Portal.Keys;
using Gateway.Testing;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Portal.Tests.Keys;

/// <summary>
/// A throw-away database with a user and keys as the operator would have written them, the portal's key
/// services over it, and <see cref="CompleteAsync"/> doing what the operator does with a request.
/// </summary>
public sealed class KeyStore : IAsyncDisposable
{
    private KeyStore(TestDatabase database)
    {
        Database = database;
        DbFactory = new PooledDbContextFactory<TokenGateDbContext>(
            new DbContextOptionsBuilder<TokenGateDbContext>().UseNpgsql(database.ConnectionString)
                .ConfigureWarnings(w => w.Ignore(Microsoft.EntityFrameworkCore.Diagnostics.RelationalEventId.PendingModelChangesWarning)).Options);
        var protection = DataProtectionProvider.Create("TokenGate.Portal.Tests");
        Client = new KeyRequestClient(DbFactory, protection, Time, NullLogger<KeyRequestClient>.Instance);
        Reveal = new KeyReveal(DbFactory, protection, Time, NullLogger<KeyReveal>.Instance);
    }

    public TestDatabase Database { get; }
    public IDbContextFactory<TokenGateDbContext> DbFactory { get; }
    public AdvanceableTimeProvider Time { get; } = new();
    public KeyRequestClient Client { get; }
    public KeyReveal Reveal { get; }

    public static async Task<KeyStore> CreateAsync()
    {
        var db = await TestDatabase.CreateAsync();
        await StorageServiceCollectionExtensions.MigrateAsync(db.ConnectionString);
        return new KeyStore(db);
    }

    public TokenGateDbContext Db() => DbFactory.CreateDbContext();

    public async Task<Guid> AddUserAsync(string name, int? maxKeys = null, bool suspended = false)
    {
        await using var db = Db();
        var user = new UserRow
        {
            Id = Guid.NewGuid(), Namespace = "default", Name = name, Login = name, Email = name + "@example.com", Suspended = suspended,
            Spec = JsonSerializer.Serialize(new UserQuotaSpec { MaxKeys = maxKeys }, TokenGateJson.Options),
            CreatedAt = Time.GetUtcNow(), UpdatedAt = Time.GetUtcNow(),
        };
        db.Users.Add(user);
        await db.SaveChangesAsync();
        return user.Id;
    }

    /// <summary>A key with one live version (as issued by the operator); returns its id and plaintext.</summary>
    public async Task<(Guid Id, string Plaintext)> AddKeyAsync(Guid userId, string name, bool portalCreated = false)
    {
        var plaintext = ApiKeyFormat.Generate();
        await using var db = Db();
        var key = new ApiKeyRow
        {
            Id = Guid.NewGuid(), Namespace = "default", Name = name, UserId = userId, Description = name + " key", CurrentVersion = 1,
            KeyPrefix = ApiKeyFormat.DisplayPrefix(plaintext), PortalCreated = portalCreated, CreatedAt = Time.GetUtcNow(), UpdatedAt = Time.GetUtcNow(),
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(); // no EF relationships: the version's foreign key needs the key first
        db.ApiKeyVersions.Add(new ApiKeyVersionRow { ApiKeyId = key.Id, Version = 1, KeyHash = new string('a', 48) + Guid.NewGuid().ToString("N")[..16], KeyPrefix = key.KeyPrefix, CreatedAt = Time.GetUtcNow() });
        await db.SaveChangesAsync();
        return (key.Id, plaintext);
    }

    /// <summary>What the operator does: marks the request done and, for create/rotate, stores the key encrypted to its public key.</summary>
    public async Task CompleteAsync(Guid requestId, string? issuedKey, Guid? resultKeyId = null, string? error = null)
    {
        await using var db = Db();
        var request = await db.KeyRequests.SingleAsync(r => r.Id == requestId);
        request.Status = error is null ? KeyRequestStatus.Done : KeyRequestStatus.Failed;
        request.Error = error;
        request.CompletedAt = Time.GetUtcNow();
        request.ResultApiKeyId = resultKeyId ?? request.ApiKeyId;
        if (issuedKey is not null)
        {
            db.KeyReveals.Add(new KeyRevealRow
            {
                RequestId = requestId,
                Ciphertext = KeyRevealCipher.Encrypt(Convert.FromBase64String(request.RevealPublicKey!), issuedKey, requestId),
                CreatedAt = Time.GetUtcNow(),
                ExpiresAt = Time.GetUtcNow() + KeyRequestContract.RevealLifetime,
            });
        }
        await db.SaveChangesAsync();
    }

    public async ValueTask DisposeAsync() => await Database.DisposeAsync();
}
