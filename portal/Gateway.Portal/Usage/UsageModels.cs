namespace Gateway.Portal.Usage;

/// <summary>One line of the usage table.</summary>
public sealed record UsageRow(
    long Id, string RequestId, DateTimeOffset StartedAt, Guid? ApiKeyId, string? KeyName, string Model, string Upstream,
    int Status, string? ErrorCode, bool Streamed, long InputTokens, long CachedInputTokens, long CacheWriteTokens,
    long OutputTokens, decimal Cost, int DurationMs)
{
    public bool Failed => Status is < 200 or > 399;
    public long TotalTokens => InputTokens + CachedInputTokens + CacheWriteTokens + OutputTokens;
}

/// <summary>One page of the usage table, newest first, with the cursors of the neighbouring pages.</summary>
public sealed record UsagePage(IReadOnlyList<UsageRow> Rows, UsageCursor? Older, UsageCursor? Newer);

/// <summary>Sums over every row a filter matches.</summary>
public sealed record UsageTotals(long Requests, long Errors, long InputTokens, long CachedInputTokens, long CacheWriteTokens, long OutputTokens, decimal Cost)
{
    public long TotalTokens => InputTokens + CachedInputTokens + CacheWriteTokens + OutputTokens;
}

/// <summary>Everything recorded about one request.</summary>
public sealed record UsageDetail(
    string RequestId, DateTimeOffset StartedAt, Guid? ApiKeyId, string? KeyName, string? KeyPrefix, int KeyVersion,
    string Model, string Upstream, string Route, int Status, string? ErrorCode, bool Streamed, bool Estimated,
    long InputTokens, long CachedInputTokens, long CacheWriteTokens, long OutputTokens, decimal Cost, string PriceVersion,
    int? TimeToFirstByteMs, int DurationMs, string? ClientIp)
{
    public bool Failed => Status is < 200 or > 399;
    public long TotalTokens => InputTokens + CachedInputTokens + CacheWriteTokens + OutputTokens;
}

/// <summary>A key of the user, for filters and the dashboard.</summary>
public sealed record KeySummary(
    Guid Id, string Name, string? Description, string? KeyPrefix, bool Disabled, DateTimeOffset? ExpiresAt,
    DateTimeOffset? LastUsedAt, long Requests30d, decimal Spend30d);
