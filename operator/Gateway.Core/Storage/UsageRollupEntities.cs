namespace Gateway.Core.Storage;

/// <summary>Usage summed per UTC day, user, key, model, upstream, streamed and outcome (migration M0003).</summary>
public sealed class UsageDailyRow
{
    public Guid? UserId { get; set; }
    public DateOnly Day { get; set; }
    public Guid? ApiKeyId { get; set; }
    public string Model { get; set; } = "";
    public string Upstream { get; set; } = "";
    public bool Streamed { get; set; }
    public bool Failed { get; set; }
    public long Requests { get; set; }
    public long Errors { get; set; }
    public long InputTokens { get; set; }
    public long CachedInputTokens { get; set; }
    public long CacheWriteTokens { get; set; }
    public long OutputTokens { get; set; }
    public decimal Cost { get; set; }
}

/// <summary>A user's consume ledger entries summed per UTC day (amount negative, as in the ledger).</summary>
public sealed class LedgerDailyRow
{
    public Guid UserId { get; set; }
    public DateOnly Day { get; set; }
    public decimal Amount { get; set; }
    public long Entries { get; set; }
    public DateTimeOffset LastAt { get; set; }
}
