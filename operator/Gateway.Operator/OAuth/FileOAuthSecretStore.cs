using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Operator.Sources;

namespace Gateway.Operator.OAuth;

/// <summary>
/// The Secret in file-source mode: a Secret manifest in the source folder, else the raw auth file in accounts/
/// the file source converted it from, else a manifest under the state directory's secrets/. The version is the SHA-256 of the file's text; a write re-reads the file, refuses if
/// the text changed since the read, replaces only that Secret's YAML document (other documents in the file and
/// the document's leading comments are kept byte for byte) and swaps the file in atomically (temp file + rename),
/// so the folder watcher and a concurrent reader see the old file or the new one, never half of one.
/// </summary>
public sealed class FileOAuthSecretStore(FileResourceSource source) : IOAuthSecretStore
{
    private static readonly Lock WriteLock = new();

    public Task<VersionedSecret?> ReadAsync(string @namespace, string name, bool fresh, CancellationToken cancellationToken)
    {
        var found = Locate(@namespace, name);
        if (found is not null) return Task.FromResult<VersionedSecret?>(new VersionedSecret(ReadData(found.Value.Doc), Hash(found.Value.Text)));
        // A Secret converted from a raw auth file in accounts/: the file is the Secret.
        if (AuthFile(@namespace, name) is { } authFile && ConvertAuthFile(authFile) is { } data)
            return Task.FromResult<VersionedSecret?>(new VersionedSecret(data, Hash(File.ReadAllText(authFile))));
        return Task.FromResult<VersionedSecret?>(null);
    }

    public Task<SecretWriteResult> WriteAsync(string @namespace, string name, string expectedVersion, string key, byte[] value, CancellationToken cancellationToken)
    {
        lock (WriteLock)
        {
            var found = Locate(@namespace, name);
            if (found is null)
            {
                // The flat auth JSON (what the conversion produces) replaces the raw file: it reads back as the same account.
                if (AuthFile(@namespace, name) is not { } authFile) return Task.FromResult(SecretWriteResult.NotFound);
                if (Hash(File.ReadAllText(authFile)) != expectedVersion) return Task.FromResult(SecretWriteResult.Conflict);
                ReplaceAtomically(authFile, Encoding.UTF8.GetString(value) + "\n");
                return Task.FromResult(SecretWriteResult.Written);
            }
            var (path, text, chunks, index, doc) = found.Value;
            if (Hash(text) != expectedVersion) return Task.FromResult(SecretWriteResult.Conflict);
            var data = new Dictionary<string, byte[]>(ReadData(doc), StringComparer.Ordinal) { [key] = value };
            chunks.Documents[index] = LeadingComments(chunks.Documents[index]) + Render(doc, data);
            ReplaceAtomically(path, chunks.Join());
            return Task.FromResult(SecretWriteResult.Written);
        }
    }

    private static void ReplaceAtomically(string path, string content)
    {
        // Same folder (a rename, not a copy); the suffix keeps it out of the source's *.yaml / accounts/*.json globs.
        var tmp = path + ".tokengate-tmp";
        File.WriteAllText(tmp, content);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, File.GetUnixFileMode(path));
        File.Move(tmp, path, overwrite: true);
    }

    private string? AuthFile(string ns, string name) =>
        source.AuthFilePath(ns, name) is { } path && File.Exists(path) ? path : null;

    /// <summary>The Secret data the file source makes of an auth file (the same conversion, so the versions agree).</summary>
    private static Dictionary<string, byte[]>? ConvertAuthFile(string path)
    {
        var result = Accounts.AccountImporter.Import([new Accounts.AuthFileInput(path, Path.GetFileName(path))], new Accounts.ImportSettings());
        if (result.Manifests.Count != 1 || result.Manifests[0].Secret["data"] is not JsonObject d) return null;
        return d.ToDictionary(p => p.Key, p => Convert.FromBase64String(p.Value?.ToString() ?? ""), StringComparer.Ordinal);
    }

    private (string Path, string Text, Chunks Chunks, int Index, JsonObject Doc)? Locate(string ns, string name)
    {
        // Declared in the folder (the last declaration wins, as in FileResourceSource.Load), else issued under the state directory.
        return LocateIn(Manifests(source.Folder), ns, name) ?? LocateIn([source.SecretPath(ns, name)], ns, name);
    }

    private static (string Path, string Text, Chunks Chunks, int Index, JsonObject Doc)? LocateIn(IEnumerable<string> files, string ns, string name)
    {
        (string, string, Chunks, int, JsonObject)? match = null;
        foreach (var file in files)
        {
            if (!File.Exists(file)) continue;
            var text = File.ReadAllText(file);
            if (!text.Contains(name, StringComparison.Ordinal)) continue;
            var chunks = Chunks.Split(text);
            for (var i = 0; i < chunks.Documents.Count; i++)
            {
                List<JsonObject> docs;
                try
                {
                    docs = YamlDocuments.Parse(chunks.Documents[i], file);
                }
                catch (InvalidDataException)
                {
                    continue;
                }
                if (docs.Count != 1) continue;
                var d = docs[0];
                if (d["kind"]?.ToString() != "Secret" || d["apiVersion"]?.ToString() != "v1") continue;
                if (d["metadata"]?["name"]?.ToString() != name || (d["metadata"]?["namespace"]?.ToString() ?? "default") != ns) continue;
                match = (file, text, chunks, i, d);
            }
        }
        return match;
    }

    private static IEnumerable<string> Manifests(string root) =>
        !Directory.Exists(root) ? [] : Directory.EnumerateFiles(root, "*.*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal);

    private static Dictionary<string, byte[]> ReadData(JsonObject doc)
    {
        var data = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        if (doc["data"] is JsonObject d) foreach (var (k, v) in d) data[k] = Convert.FromBase64String(v?.ToString() ?? "");
        if (doc["stringData"] is JsonObject sd) foreach (var (k, v) in sd) data[k] = Encoding.UTF8.GetBytes(v?.ToString() ?? "");
        return data;
    }

    private static string Render(JsonObject doc, Dictionary<string, byte[]> data)
    {
        var sb = new StringBuilder();
        sb.Append("apiVersion: v1\nkind: Secret\nmetadata:\n");
        var meta = doc["metadata"] as JsonObject ?? [];
        sb.Append("  name: ").Append(Quote(meta["name"]!.ToString())).Append('\n');
        if (meta["namespace"] is { } ns) sb.Append("  namespace: ").Append(Quote(ns.ToString())).Append('\n');
        foreach (var map in (string[])["labels", "annotations"])
        {
            if (meta[map] is not JsonObject m || m.Count == 0) continue;
            sb.Append("  ").Append(map).Append(":\n");
            foreach (var (k, v) in m) sb.Append("    ").Append(Quote(k)).Append(": ").Append(Quote(v?.ToString() ?? "")).Append('\n');
        }
        sb.Append("type: ").Append(Quote(doc["type"]?.ToString() ?? "Opaque")).Append('\n');
        var text = new List<(string, string)>();
        var binary = new List<(string, string)>();
        foreach (var (k, v) in data.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (AsPrintableText(v) is { } s) text.Add((k, s));
            else binary.Add((k, Convert.ToBase64String(v)));
        }
        if (text.Count > 0)
        {
            sb.Append("stringData:\n");
            foreach (var (k, v) in text) sb.Append("  ").Append(Quote(k)).Append(": ").Append(Quote(v)).Append('\n');
        }
        if (binary.Count > 0)
        {
            sb.Append("data:\n");
            foreach (var (k, v) in binary) sb.Append("  ").Append(Quote(k)).Append(": ").Append(v).Append('\n');
        }
        return sb.ToString();
    }

    private static string? AsPrintableText(byte[] value)
    {
        try
        {
            var s = new UTF8Encoding(false, true).GetString(value);
            return s.Any(char.IsControl) ? null : s;
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    // YAML single-quoted scalar: everything literal, a quote doubled.
    private static string Quote(string s) => "'" + s.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string LeadingComments(string chunk)
    {
        var sb = new StringBuilder();
        foreach (var line in chunk.Split('\n'))
        {
            if (!line.TrimStart().StartsWith('#')) break;
            sb.Append(line).Append('\n');
        }
        return sb.ToString();
    }

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>A file cut at its "---" lines, keeping the separators as they were.</summary>
    private sealed class Chunks
    {
        public List<string> Documents { get; } = [];
        private readonly List<string> _separators = [];

        public static Chunks Split(string text)
        {
            var c = new Chunks();
            var current = new StringBuilder();
            foreach (var line in text.Split('\n'))
            {
                if (line.TrimEnd('\r', ' ', '\t') == "---")
                {
                    c.Documents.Add(current.ToString());
                    c._separators.Add(line);
                    current.Clear();
                    continue;
                }
                current.Append(line).Append('\n');
            }
            var last = current.ToString();
            // Split added a '\n' after the final line that the text did not have.
            c.Documents.Add(last.Length == 0 ? "" : last[..^1]);
            return c;
        }

        public string Join()
        {
            var sb = new StringBuilder();
            for (var i = 0; i < Documents.Count; i++)
            {
                if (i > 0) sb.Append(_separators[i - 1]).Append('\n');
                sb.Append(Documents[i]);
            }
            return sb.ToString();
        }
    }
}
