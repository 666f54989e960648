using System.Data;
using System.Globalization;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Portal.Usage;

/// <summary>
/// The usage table as CSV (RFC 4180), written to the response while PostgreSQL sends the rows: the result is
/// never held in memory, whatever its size. Same filters and order as the table (newest first).
/// </summary>
public sealed class UsageCsvExport(NpgsqlDataSource dataSource)
{
    public static readonly string[] Header =
    [
        "request_id", "started_at", "key", "model", "upstream", "route", "status", "error_code", "streamed", "estimated",
        "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "cost", "price_version",
        "ttfb_ms", "duration_ms", "client_ip",
    ];

    /// <summary>Writes the header and every matching row to <paramref name="output"/>; returns the number of rows.</summary>
    public async Task<long> WriteAsync(Guid userId, UsageFilter filter, Stream output, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        await using var cmd = dataSource.CreateCommand();
        var sql = new StringBuilder("""
            SELECT u.request_id, u.started_at, k.name, u.model, u.upstream, u.route, u.status, u.error_code, u.streamed, u.estimated,
                u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens, u.cost, u.price_version,
                u.ttfb_ms, u.duration_ms, u.client_ip
            FROM usage_log u LEFT JOIN api_keys k ON k.id = u.api_key_id WHERE u.user_id = @user
            """);
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Uuid) { Value = userId });
        filter.AppendLogConditions(sql, cmd.Parameters, "u");
        sql.Append(" ORDER BY u.started_at DESC, u.id DESC");
        cmd.CommandText = sql.ToString();

        // A 32 KB buffer between the reader and the socket: flushed whenever it fills, so memory stays flat.
        await using var writer = new StreamWriter(output, new UTF8Encoding(false), 32 * 1024, leaveOpen: true);
        var line = new StringBuilder(256);
        await WriteLineAsync(writer, line, Header, ct);
        var inv = CultureInfo.InvariantCulture;
        var cells = new string[Header.Length];
        long count = 0;
        await using var r = await cmd.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await r.ReadAsync(ct))
        {
            cells[0] = r.GetString(0);
            cells[1] = r.GetFieldValue<DateTimeOffset>(1).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", inv);
            cells[2] = r.IsDBNull(2) ? "" : r.GetString(2);
            cells[3] = r.GetString(3);
            cells[4] = r.GetString(4);
            cells[5] = r.GetString(5);
            cells[6] = r.GetInt32(6).ToString(inv);
            cells[7] = r.IsDBNull(7) ? "" : r.GetString(7);
            cells[8] = r.GetBoolean(8) ? "true" : "false";
            cells[9] = r.GetBoolean(9) ? "true" : "false";
            for (var i = 10; i <= 13; i++) cells[i] = r.GetInt64(i).ToString(inv);
            cells[14] = r.GetDecimal(14).ToString("0.00000000", inv);
            cells[15] = r.GetString(15);
            cells[16] = r.IsDBNull(16) ? "" : r.GetInt32(16).ToString(inv);
            cells[17] = r.GetInt32(17).ToString(inv);
            cells[18] = r.IsDBNull(18) ? "" : r.GetString(18);
            await WriteLineAsync(writer, line, cells, ct);
            count++;
        }
        await writer.FlushAsync(ct);
        return count;
    }

    // One line is built, then handed to the writer asynchronously: the response body allows no synchronous
    // writes, and the StreamWriter reaches the socket only when its buffer fills.
    private static Task WriteLineAsync(StreamWriter writer, StringBuilder line, string[] cells, CancellationToken ct)
    {
        line.Clear();
        for (var i = 0; i < cells.Length; i++)
        {
            if (i > 0) line.Append(',');
            AppendCell(line, cells[i]);
        }
        line.Append("\r\n"); // CRLF, as RFC 4180 says
        return writer.WriteAsync(line, ct);
    }

    /// <summary>Quotes a cell when it holds a comma, quote, CR or LF, doubling inner quotes.</summary>
    internal static void AppendCell(StringBuilder line, string value)
    {
        if (value.AsSpan().IndexOfAny(",\"\r\n") < 0)
        {
            line.Append(value);
            return;
        }
        line.Append('"').Append(value.Replace("\"", "\"\"", StringComparison.Ordinal)).Append('"');
    }
}
