using System.Security.Cryptography;
using System.Text;
using Gateway.Core.Storage;
using Gateway.Portal.Auth;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gateway.Portal.Sessions;

/// <summary>A valid portal session as seen by the current request.</summary>
public sealed record PortalSession(Guid Id, Guid UserId, string Login, string Role, DateTimeOffset CreatedAt, DateTimeOffset LastSeenAt, DateTimeOffset ExpiresAt);

/// <summary>
/// Server-side portal sessions in PostgreSQL (<c>portal_sessions</c>). The cookie carries a random token;
/// the table holds its SHA-256, so a read of the table cannot be replayed as a cookie. Every request
/// checks the row (one indexed query joined to the user), so revocation and suspension take effect at
/// once on every replica.
/// </summary>
public sealed class SessionStore(IDbContextFactory<TokenGateDbContext> dbFactory, TimeProvider time, IOptions<PortalOptions> options)
{
    /// <summary>last_seen_at is written at most this often (keeps validation to a read on most requests).</summary>
    public static readonly TimeSpan TouchInterval = TimeSpan.FromMinutes(1);

    public static string HashToken(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>Creates a session; returns the token for the cookie and the stored row.</summary>
    public async Task<(string Token, PortalSessionRow Row)> CreateAsync(Guid userId, ClientInfo client, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var now = time.GetUtcNow();
        var row = new PortalSessionRow
        {
            Id = Guid.NewGuid(),
            TokenHash = HashToken(token),
            UserId = userId,
            UserAgent = client.UserAgent,
            Ip = client.Ip,
            CreatedAt = now,
            LastSeenAt = now,
            ExpiresAt = now + options.Value.SessionAbsoluteLifetime,
        };
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        db.PortalSessions.Add(row);
        await db.SaveChangesAsync(ct);
        return (token, row);
    }

    /// <summary>
    /// The session for <paramref name="token"/> if it is live: not revoked, not idle longer than the idle
    /// timeout, not past its absolute lifetime, and its user enrolled, not suspended and not deleted.
    /// Refreshes last_seen_at when it is older than <see cref="TouchInterval"/>.
    /// </summary>
    public async Task<PortalSession?> ValidateAsync(string token, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(token);
        var hash = HashToken(token);
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var s = await db.PortalSessions.AsNoTracking()
            .Where(x => x.TokenHash == hash && x.RevokedAt == null)
            .Join(db.Users, x => x.UserId, u => u.Id, (x, u) => new
            {
                x.Id, x.UserId, x.CreatedAt, x.LastSeenAt, x.ExpiresAt,
                u.Login, u.PortalRole, u.Suspended, u.DeletedAt, u.Enrollment,
            })
            .SingleOrDefaultAsync(ct);
        if (s is null) return null;
        if (s.Suspended || s.DeletedAt is not null || s.Enrollment != "Enrolled"
            || now >= s.ExpiresAt || now - s.LastSeenAt >= options.Value.SessionIdleTimeout)
        {
            return null;
        }
        var lastSeen = s.LastSeenAt;
        if (now - s.LastSeenAt >= TouchInterval)
        {
            await db.PortalSessions.Where(x => x.Id == s.Id).ExecuteUpdateAsync(u => u.SetProperty(x => x.LastSeenAt, now), ct);
            lastSeen = now;
        }
        return new PortalSession(s.Id, s.UserId, s.Login, s.PortalRole, s.CreatedAt, lastSeen, s.ExpiresAt);
    }

    /// <summary>Sessions of a user that are not revoked and not expired, newest first.</summary>
    public async Task<IReadOnlyList<PortalSessionRow>> ListActiveAsync(Guid userId, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var idleSince = now - options.Value.SessionIdleTimeout;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.PortalSessions.AsNoTracking()
            .Where(x => x.UserId == userId && x.RevokedAt == null && x.ExpiresAt > now && x.LastSeenAt > idleSince)
            .OrderByDescending(x => x.LastSeenAt)
            .ToListAsync(ct);
    }

    /// <summary>Revokes one session of a user ("sign out this device"); false when it was not live.</summary>
    public async Task<bool> RevokeAsync(Guid userId, Guid sessionId, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.PortalSessions.Where(x => x.Id == sessionId && x.UserId == userId && x.RevokedAt == null)
            .ExecuteUpdateAsync(u => u.SetProperty(x => x.RevokedAt, now), ct) == 1;
    }

    /// <summary>Revokes the session a cookie token belongs to (sign out).</summary>
    public async Task RevokeTokenAsync(string token, CancellationToken ct)
    {
        var hash = HashToken(token);
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await db.PortalSessions.Where(x => x.TokenHash == hash && x.RevokedAt == null)
            .ExecuteUpdateAsync(u => u.SetProperty(x => x.RevokedAt, now), ct);
    }

    /// <summary>Revokes every session of a user ("sign out everywhere"), optionally keeping one; returns how many ended.</summary>
    public async Task<int> RevokeAllAsync(Guid userId, Guid? except, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.PortalSessions.Where(x => x.UserId == userId && x.RevokedAt == null && x.Id != except)
            .ExecuteUpdateAsync(u => u.SetProperty(x => x.RevokedAt, now), ct);
    }
}
