using System.Globalization;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Portal.Usage;

/// <summary>Outcome filter of the usage table: ok = a 2xx/3xx answer, error = anything else.</summary>
public enum UsageStatusFilter
{
    Any,
    Ok,
    Error,
}

/// <summary>
/// The usage table's filters. Dates are whole UTC days, both ends inclusive, so the same filter reads
/// <c>usage_log</c> (rows) and <c>usage_daily</c> (totals) exactly alike.
/// </summary>
public sealed record UsageFilter
{
    public DateOnly? From { get; init; }
    public DateOnly? To { get; init; }
    public Guid? KeyId { get; init; }
    public string? Model { get; init; }
    public UsageStatusFilter Status { get; init; }
    public bool? Streamed { get; init; }

    /// <summary>The SQL text of a failed row; must match the partial index usage_log_user_failed_idx.</summary>
    internal const string FailedPredicate = Gateway.Core.Storage.Migrations.M0003_UsageDetail.FailedPredicate;

    /// <summary>Reads the filter from query-string values; anything unparsable is ignored (no filter).</summary>
    public static UsageFilter Parse(string? from, string? to, string? key, string? model, string? status, string? streamed) => new()
    {
        From = DateOnly.TryParseExact(from, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var f) ? f : null,
        To = DateOnly.TryParseExact(to, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var t) ? t : null,
        KeyId = Guid.TryParse(key, out var k) ? k : null,
        Model = string.IsNullOrWhiteSpace(model) ? null : model.Trim(),
        Status = status switch { "ok" => UsageStatusFilter.Ok, "error" => UsageStatusFilter.Error, _ => UsageStatusFilter.Any },
        Streamed = streamed switch { "yes" or "true" => true, "no" or "false" => false, _ => null },
    };

    /// <summary>The filter as query-string pairs (for links that keep it: pagination, CSV export).</summary>
    public Dictionary<string, string?> ToQuery() => new(StringComparer.Ordinal)
    {
        ["from"] = From?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        ["to"] = To?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        ["key"] = KeyId?.ToString("D"),
        ["model"] = Model,
        ["status"] = Status switch { UsageStatusFilter.Ok => "ok", UsageStatusFilter.Error => "error", _ => null },
        ["streamed"] = Streamed switch { true => "yes", false => "no", _ => null },
    };

    /// <summary>Appends the conditions on <c>usage_log</c> (alias <paramref name="t"/>) and adds their parameters.</summary>
    internal void AppendLogConditions(StringBuilder sql, NpgsqlParameterCollection p, string t)
    {
        if (From is { } from)
        {
            sql.Append(" AND ").Append(t).Append(".started_at >= @from");
            p.Add(new NpgsqlParameter("from", NpgsqlDbType.TimestampTz) { Value = from.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc) });
        }
        if (To is { } to)
        {
            sql.Append(" AND ").Append(t).Append(".started_at < @to");
            p.Add(new NpgsqlParameter("to", NpgsqlDbType.TimestampTz) { Value = to.AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc) });
        }
        AppendCommon(sql, p, t);
        if (Status == UsageStatusFilter.Ok) sql.Append(" AND ").Append(t).Append(".status BETWEEN 200 AND 399");
        else if (Status == UsageStatusFilter.Error) sql.Append(" AND NOT (").Append(t).Append(".status BETWEEN 200 AND 399)");
    }

    /// <summary>Appends the same conditions on <c>usage_daily</c> (alias <paramref name="t"/>).</summary>
    internal void AppendDailyConditions(StringBuilder sql, NpgsqlParameterCollection p, string t)
    {
        if (From is { } from)
        {
            sql.Append(" AND ").Append(t).Append(".day >= @fromday");
            p.Add(new NpgsqlParameter("fromday", NpgsqlDbType.Date) { Value = from });
        }
        if (To is { } to)
        {
            sql.Append(" AND ").Append(t).Append(".day <= @today");
            p.Add(new NpgsqlParameter("today", NpgsqlDbType.Date) { Value = to });
        }
        AppendCommon(sql, p, t);
        if (Status == UsageStatusFilter.Ok) sql.Append(" AND NOT ").Append(t).Append(".failed");
        else if (Status == UsageStatusFilter.Error) sql.Append(" AND ").Append(t).Append(".failed");
    }

    private void AppendCommon(StringBuilder sql, NpgsqlParameterCollection p, string t)
    {
        if (KeyId is { } key)
        {
            sql.Append(" AND ").Append(t).Append(".api_key_id = @key");
            p.Add(new NpgsqlParameter("key", NpgsqlDbType.Uuid) { Value = key });
        }
        if (Model is { } model)
        {
            sql.Append(" AND ").Append(t).Append(".model = @model");
            p.Add(new NpgsqlParameter("model", NpgsqlDbType.Text) { Value = model });
        }
        if (Streamed is { } streamed)
        {
            sql.Append(" AND ").Append(t).Append(".streamed = @streamed");
            p.Add(new NpgsqlParameter("streamed", NpgsqlDbType.Boolean) { Value = streamed });
        }
    }
}

/// <summary>A keyset position in the usage table (started_at, id), newest first; opaque text in links.</summary>
public readonly record struct UsageCursor(DateTimeOffset StartedAt, long Id)
{
    public override string ToString() => string.Concat(
        (StartedAt.UtcTicks / 10).ToString(CultureInfo.InvariantCulture), "-", Id.ToString(CultureInfo.InvariantCulture));

    public static UsageCursor? Parse(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0) return null;
        if (!long.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var micros)) return null;
        if (!long.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var id)) return null;
        if (micros > DateTimeOffset.MaxValue.UtcTicks / 10) return null;
        return new UsageCursor(new DateTimeOffset(micros * 10, TimeSpan.Zero), id);
    }
}
