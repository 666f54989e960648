using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Npgsql;

namespace Gateway.Portal.Auth;

/// <summary>
/// The data-protection key ring in PostgreSQL (<c>dataprotection_keys</c>), so every portal replica
/// reads and writes the same keys: a cookie or enrolment state protected by one replica is readable by
/// all. (Microsoft.AspNetCore.DataProtection.EntityFrameworkCore does not restore here.)
/// </summary>
public sealed class PostgresXmlRepository(string connectionString) : IXmlRepository
{
    public IReadOnlyCollection<XElement> GetAllElements()
    {
        using var conn = new NpgsqlConnection(connectionString);
        conn.Open();
        using var cmd = new NpgsqlCommand("SELECT xml FROM dataprotection_keys ORDER BY id", conn);
        using var reader = cmd.ExecuteReader();
        var elements = new List<XElement>();
        while (reader.Read()) elements.Add(XElement.Parse(reader.GetString(0)));
        return elements;
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        ArgumentNullException.ThrowIfNull(element);
        using var conn = new NpgsqlConnection(connectionString);
        conn.Open();
        // Friendly names are "key-<guid>": a repeated store of the same key is a no-op.
        using var cmd = new NpgsqlCommand(
            "INSERT INTO dataprotection_keys (friendly_name, xml) VALUES (@name, @xml) ON CONFLICT (friendly_name) DO NOTHING", conn);
        cmd.Parameters.AddWithValue("name", friendlyName ?? Guid.NewGuid().ToString("N"));
        cmd.Parameters.AddWithValue("xml", element.ToString(SaveOptions.DisableFormatting));
        cmd.ExecuteNonQuery();
    }
}
