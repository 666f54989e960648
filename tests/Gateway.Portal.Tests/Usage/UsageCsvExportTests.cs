using System.Globalization;
using System.Text;
using Gateway.Portal.Usage;

namespace Gateway.Portal.Tests.Usage;

public sealed class UsageCsvExportTests(UsageDataFixture f) : IClassFixture<UsageDataFixture>
{
    /// <summary>An RFC 4180 reader, independent of the writer: quoted cells, doubled quotes, CRLF.</summary>
    internal static List<string[]> ParseCsv(string text)
    {
        var rows = new List<string[]>();
        var row = new List<string>();
        var cell = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { cell.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else cell.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { row.Add(cell.ToString()); cell.Clear(); }
            else if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
            {
                row.Add(cell.ToString()); cell.Clear();
                rows.Add([.. row]); row.Clear();
                i++;
            }
            else cell.Append(c);
        }
        Assert.True(row.Count == 0 && cell.Length == 0, "the CSV ends with CRLF");
        return rows;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Csv_equals_usage_log_rows_for_the_filter(bool filtered)
    {
        var today = DateOnly.FromDateTime(f.Now.UtcDateTime);
        var filter = filtered ? new UsageFilter { From = today.AddDays(-25), Model = "odd,\"model\"" } : new UsageFilter();
        using var output = new MemoryStream();
        var written = await new UsageCsvExport(f.DataSource).WriteAsync(f.Alice, filter, output);
        var rows = ParseCsv(Encoding.UTF8.GetString(output.ToArray()));
        Assert.Equal(UsageCsvExport.Header, rows[0]);
        Assert.Equal(written, rows.Count - 1);

        // The same rows straight from usage_log, in the table's order, every field compared.
        var where = filtered
            ? $" AND u.started_at >= '{today.AddDays(-25):yyyy-MM-dd}T00:00:00Z' AND u.model = 'odd,\"model\"'"
            : "";
        await using var cmd = f.DataSource.CreateCommand($"""
            SELECT u.request_id, u.started_at, coalesce(k.name, ''), u.model, u.upstream, u.route, u.status, coalesce(u.error_code, ''),
                u.streamed, u.estimated, u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens, u.cost,
                u.price_version, u.ttfb_ms, u.duration_ms, coalesce(u.client_ip, '')
            FROM usage_log u LEFT JOIN api_keys k ON k.id = u.api_key_id
            WHERE u.user_id = '{f.Alice}'{where} ORDER BY u.started_at DESC, u.id DESC
            """);
        await using var r = await cmd.ExecuteReaderAsync();
        var i = 1;
        while (await r.ReadAsync())
        {
            var csv = rows[i++];
            Assert.Equal(r.GetString(0), csv[0]);
            Assert.Equal(r.GetFieldValue<DateTimeOffset>(1), DateTimeOffset.Parse(csv[1], CultureInfo.InvariantCulture));
            for (var c = 2; c <= 5; c++) Assert.Equal(r.GetString(c), csv[c]);
            Assert.Equal(r.GetInt32(6), int.Parse(csv[6], CultureInfo.InvariantCulture));
            Assert.Equal(r.GetString(7), csv[7]);
            Assert.Equal(r.GetBoolean(8), bool.Parse(csv[8]));
            Assert.Equal(r.GetBoolean(9), bool.Parse(csv[9]));
            for (var c = 10; c <= 13; c++) Assert.Equal(r.GetInt64(c), long.Parse(csv[c], CultureInfo.InvariantCulture));
            Assert.Equal(r.GetDecimal(14), decimal.Parse(csv[14], CultureInfo.InvariantCulture));
            Assert.Equal(r.GetString(15), csv[15]);
            Assert.Equal(r.IsDBNull(16) ? "" : r.GetInt32(16).ToString(CultureInfo.InvariantCulture), csv[16]);
            Assert.Equal(r.GetInt32(17), int.Parse(csv[17], CultureInfo.InvariantCulture));
            Assert.Equal(r.GetString(18), csv[18]);
        }
        Assert.Equal(rows.Count, i);
        Assert.True(rows.Count > 10);
        if (filtered) Assert.All(rows.Skip(1), row => Assert.Equal("odd,\"model\"", row[3]));
    }
}
