using Microsoft.EntityFrameworkCore;

namespace Gateway.Core.Storage;

/// <summary>What a portal user asks the operator to do with a key.</summary>
public static class KeyRequestKinds
{
    public const string Create = "create";
    public const string Rotate = "rotate";
    public const string Disable = "disable";
    public const string Enable = "enable";
    public const string Delete = "delete";

    /// <summary>Kinds whose outcome is a new key shown once to the requester.</summary>
    public static bool Reveals(string kind) => kind is Create or Rotate;
}

/// <summary>Request states: the operator moves a request from pending to done or failed exactly once.</summary>
public static class KeyRequestStatus
{
    public const string Pending = "pending";
    public const string Done = "done";
    public const string Failed = "failed";
}

/// <summary>Names shared by the portal and the operator for portal key requests.</summary>
public static class KeyRequestContract
{
    /// <summary>PostgreSQL channel a trigger notifies on every inserted request.</summary>
    public const string NotifyChannel = "tokengate_key_requests";
    /// <summary>Label on ApiKeys the operator created for a portal request (the only ones the portal may delete).</summary>
    public const string CreatedByLabel = "tokengate.io/created-by";
    public const string CreatedByPortal = "portal";
    /// <summary>Annotation naming the request a portal-created ApiKey was made for.</summary>
    public const string RequestAnnotation = "tokengate.io/portal-request";
    /// <summary>How long an issued key waits for its one view.</summary>
    public static readonly TimeSpan RevealLifetime = TimeSpan.FromMinutes(10);
}

/// <summary>A portal request to create, rotate, disable, enable or delete a key (table key_requests).</summary>
public sealed class KeyRequestRow
{
    public Guid Id { get; set; }
    public Guid UserId { get; set; }
    public Guid? ApiKeyId { get; set; }
    public string Kind { get; set; } = "";
    /// <summary>JSON of <see cref="KeyRequestParameters"/>.</summary>
    public string Parameters { get; set; } = "{}";
    public string? RevealPublicKey { get; set; }
    /// <summary>Protected by the portal's data protection; only the portal can unprotect it.</summary>
    public string? RevealPrivateKey { get; set; }
    public string Status { get; set; } = KeyRequestStatus.Pending;
    /// <summary>A message for the user when the request failed.</summary>
    public string? Error { get; set; }
    public Guid? ResultApiKeyId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }
    public DateTimeOffset? RevealedAt { get; set; }
}

/// <summary>Parameters of a create request.</summary>
public sealed record KeyRequestParameters
{
    public string? Description { get; init; }
    public DateTimeOffset? ExpiresAt { get; init; }
    public List<string> AllowedModels { get; init; } = [];
}

/// <summary>An issued key waiting for its one view, encrypted to the request's reveal public key (table key_reveals).</summary>
public sealed class KeyRevealRow
{
    public Guid RequestId { get; set; }
    public byte[] Ciphertext { get; set; } = [];
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
}

/// <summary>EF mapping of the key request tables (called from <see cref="TokenGateDbContext"/>).</summary>
internal static class KeyRequestModel
{
    public static void Map(ModelBuilder b)
    {
        b.Entity<KeyRequestRow>(e =>
        {
            e.ToTable("key_requests");
            e.HasKey(x => x.Id);
            e.Property(x => x.Parameters).HasColumnType("jsonb");
        });
        b.Entity<KeyRevealRow>(e =>
        {
            e.ToTable("key_reveals");
            e.HasKey(x => x.RequestId);
        });
    }
}
