using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Operator.Accounts;

namespace Gateway.Operator.Sources;

/// <summary>Desired state read from a folder of YAML manifests.</summary>
public sealed record ResourceSnapshot(
    IReadOnlyList<UpstreamAccount> UpstreamAccounts,
    IReadOnlyList<UserQuota> UserQuotas,
    IReadOnlyList<ApiKey> ApiKeys,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, byte[]>> Secrets,
    IReadOnlyList<string> Errors,
    IReadOnlyList<string>? Notices = null);

/// <summary>
/// The file source: reads every *.yaml / *.yml under a folder (multi-document) and the raw auth JSON files in its
/// accounts/ subfolder (converted as `import-accounts` does), and writes what the
/// operator issues under a state directory: Secrets as manifests in secrets/&lt;namespace&gt;/&lt;name&gt;.yaml
/// and statuses in status/&lt;namespace&gt;/&lt;kind&gt;.&lt;name&gt;.json.
/// </summary>
public sealed class FileResourceSource : IResourceSource
{
    private readonly string _folder;
    private readonly string _stateDir;
    private readonly Dictionary<string, (string SpecJson, long Generation)> _generations = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private IReadOnlyDictionary<string, string> _authFiles = new Dictionary<string, string>();
    private IReadOnlyDictionary<string, IReadOnlyDictionary<string, byte[]>> _declaredSecrets =
        new Dictionary<string, IReadOnlyDictionary<string, byte[]>>();

    public FileResourceSource(string folder, string stateDir)
    {
        _folder = Path.GetFullPath(folder);
        _stateDir = Path.GetFullPath(stateDir);
        if (!Directory.Exists(_folder)) throw new DirectoryNotFoundException($"Source folder '{folder}' does not exist.");
    }

    /// <summary>Subfolder of the source folder whose raw auth JSON files are imported as accounts (see AuthFileDocuments).</summary>
    public const string AccountsFolder = "accounts";

    public string Folder => _folder;
    public string SecretsDir => Path.Combine(_stateDir, "secrets");
    public string StatusDir => Path.Combine(_stateDir, "status");
    /// <summary>ApiKeys the operator created for portal requests: portal/apikeys/&lt;namespace&gt;/&lt;name&gt;.yaml, read with the folder.</summary>
    public string PortalKeysDir => Path.Combine(_stateDir, "portal", "apikeys");

    /// <summary>Reads the folder. Files that fail to parse are reported in Errors and skipped, never fatal.</summary>
    public ResourceSnapshot Load()
    {
        var uas = new List<UpstreamAccount>();
        var uqs = new List<UserQuota>();
        var aks = new List<ApiKey>();
        var secrets = new Dictionary<string, IReadOnlyDictionary<string, byte[]>>(StringComparer.Ordinal);
        var errors = new List<string>();
        var notices = new List<string>();
        // Manifests first, then the auth files of accounts/: the iterator runs after the manifests were
        // taken in, so an object declared in a manifest wins over one converted from an auth file.
        foreach (var (rel, docs) in ManifestDocuments(errors).Concat(AuthFileDocuments(uas, secrets, errors, notices)))
        {
            foreach (var doc in docs)
            {
                var kind = doc["kind"]?.GetValue<string>();
                var apiVersion = doc["apiVersion"]?.GetValue<string>();
                try
                {
                    switch (kind)
                    {
                        case "Secret" when apiVersion == "v1":
                            var (key, data) = ReadSecret(doc);
                            secrets[key] = data;
                            break;
                        case "UpstreamAccount" when apiVersion == TokenGateApi.ApiVersion:
                            uas.Add(Bind<UpstreamAccount>(doc));
                            break;
                        case "UserQuota" when apiVersion == TokenGateApi.ApiVersion:
                            uqs.Add(Bind<UserQuota>(doc));
                            break;
                        case "ApiKey" when apiVersion == TokenGateApi.ApiVersion:
                            aks.Add(Bind<ApiKey>(doc));
                            break;
                        default:
                            // Other kinds (ConfigMaps, kustomizations…) are not ours.
                            break;
                    }
                }
                catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException or FormatException)
                {
                    errors.Add($"{rel}: {kind} '{doc["metadata"]?["name"]}' is invalid: {e.Message}");
                }
            }
        }
        lock (_lock) _declaredSecrets = secrets;
        return new ResourceSnapshot(uas, uqs, aks, secrets, errors, notices);
    }

    private IEnumerable<(string Rel, List<JsonObject> Docs)> ManifestDocuments(List<string> errors)
    {
        foreach (var (root, file) in ManifestFiles(_folder).Concat(ManifestFiles(PortalKeysDir)))
        {
            var rel = Path.GetRelativePath(root, file);
            List<JsonObject> docs;
            try
            {
                docs = YamlDocuments.Parse(File.ReadAllText(file), rel);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                errors.Add(e.Message);
                continue;
            }
            yield return (rel, docs);
        }
    }

    /// <summary>
    /// Raw auth files in accounts/ (*.json, not subfolders) become a Secret and an UpstreamAccount each, by the
    /// conversion `import-accounts` runs with its defaults (namespace default, per-type targets). Unusable files
    /// are reported and skipped; merged duplicates and objects a manifest already declares are noted.
    /// </summary>
    private IEnumerable<(string Rel, List<JsonObject> Docs)> AuthFileDocuments(List<UpstreamAccount> declaredAccounts,
        Dictionary<string, IReadOnlyDictionary<string, byte[]>> declaredSecrets, List<string> errors, List<string> notices)
    {
        var dir = Path.Combine(_folder, AccountsFolder);
        var authFiles = new Dictionary<string, string>(StringComparer.Ordinal);
        var converted = new List<(string, List<JsonObject>)>();
        if (Directory.Exists(dir))
        {
            var files = Directory.EnumerateFiles(dir, "*.json", SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal)
                .Select(f => new AuthFileInput(f, Path.GetRelativePath(_folder, f))).ToList();
            var result = AccountImporter.Import(files, new ImportSettings());
            errors.AddRange(result.Errors.Select(e => e.ToString()));
            notices.AddRange(result.Merges.Select(m => m.ToString()));
            var declared = declaredAccounts.Select(u => u.Key).ToHashSet(StringComparer.Ordinal);
            foreach (var m in result.Manifests)
            {
                var ns = m.UpstreamAccount["metadata"]!["namespace"]!.GetValue<string>();
                var secretName = m.Secret["metadata"]!["name"]!.GetValue<string>();
                if (declared.Contains($"{ns}/{m.Name}") || declaredSecrets.ContainsKey($"{ns}/{secretName}"))
                {
                    notices.Add($"{m.Account.SourceFile}: UpstreamAccount {ns}/{m.Name} or Secret {secretName} is also declared in a manifest; the manifest wins.");
                    continue;
                }
                authFiles[$"{ns}/{secretName}"] = Path.Combine(_folder, m.Account.SourceFile);
                converted.Add((m.Account.SourceFile, [m.Secret, m.UpstreamAccount]));
            }
        }
        lock (_lock) _authFiles = authFiles;
        foreach (var c in converted) yield return c; // an iterator: runs only after the manifests were taken in
    }

    /// <summary>
    /// The auth file in accounts/ a Secret was converted from at the last load (null for Secrets declared in YAML):
    /// where a refreshed token pair belongs in file mode (the flat auth JSON of <see cref="ImportedAccount.ToAuthJson"/>
    /// reads back the same).
    /// </summary>
    public string? AuthFilePath(string @namespace, string secretName)
    {
        lock (_lock) return _authFiles.GetValueOrDefault($"{@namespace}/{secretName}");
    }

    private static IEnumerable<(string Root, string File)> ManifestFiles(string root) =>
        !Directory.Exists(root) ? [] : Directory.EnumerateFiles(root, "*.*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .Select(f => (root, f));

    /// <summary>Where the manifest of a portal-created ApiKey lives.</summary>
    public string PortalKeyPath(string @namespace, string name) => Path.Combine(PortalKeysDir, Safe(@namespace), Safe(name) + ".yaml");

    /// <summary>Writes (or replaces) the manifest of a portal-created ApiKey; the next load reads it.</summary>
    public void WritePortalKey(string @namespace, string name, string yaml)
    {
        var path = PortalKeyPath(@namespace, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        WriteFileAtomically(path, yaml, secretFile: false);
    }

    /// <summary>Deletes the manifest of a portal-created ApiKey; false when there is none.</summary>
    public bool DeletePortalKey(string @namespace, string name)
    {
        var path = PortalKeyPath(@namespace, name);
        if (!File.Exists(path)) return false;
        File.Delete(path);
        return true;
    }

    private T Bind<T>(JsonObject doc) where T : class, IResource
    {
        var value = doc.Deserialize<T>(TokenGateJson.Options) ?? throw new InvalidDataException("empty document");
        var meta = value.Metadata;
        if (string.IsNullOrEmpty(meta.Name)) throw new InvalidDataException("metadata.name is required");
        meta.Namespace ??= "default";
        var kind = doc["kind"]!.GetValue<string>();
        var id = $"{kind}/{meta.Namespace}/{meta.Name}";
        var specJson = doc["spec"]?.ToJsonString() ?? "{}";
        lock (_lock)
        {
            // Generation follows Kubernetes: it moves only when the spec changes.
            if (!_generations.TryGetValue(id, out var g)) g = (specJson, 1);
            else if (g.SpecJson != specJson) g = (specJson, g.Generation + 1);
            _generations[id] = g;
            meta.Generation = g.Generation;
        }
        meta.Uid ??= new Guid(SHA256.HashData(Encoding.UTF8.GetBytes(id)).AsSpan(0, 16)).ToString();
        return value;
    }

    private static (string Key, IReadOnlyDictionary<string, byte[]> Data) ReadSecret(JsonObject doc)
    {
        var name = doc["metadata"]?["name"]?.GetValue<string>() ?? throw new InvalidDataException("Secret without metadata.name");
        var ns = doc["metadata"]?["namespace"]?.GetValue<string>() ?? "default";
        var data = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        if (doc["data"] is JsonObject d)
        {
            foreach (var (k, v) in d) data[k] = Convert.FromBase64String(v?.GetValue<string>() ?? "");
        }
        if (doc["stringData"] is JsonObject sd)
        {
            foreach (var (k, v) in sd) data[k] = Encoding.UTF8.GetBytes(v?.ToString() ?? "");
        }
        return ($"{ns}/{name}", data);
    }

    public Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_declaredSecrets.TryGetValue($"{@namespace}/{name}", out var declared)) return Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(declared);
        }
        var path = SecretPath(@namespace, name);
        if (!File.Exists(path)) return Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(null);
        var doc = YamlDocuments.Parse(File.ReadAllText(path), path).FirstOrDefault();
        return Task.FromResult<IReadOnlyDictionary<string, byte[]>?>(doc is null ? null : ReadSecret(doc).Data);
    }

    public Task ApplySecretAsync(IssuedSecret secret, CancellationToken cancellationToken)
    {
        var path = SecretPath(secret.Namespace, secret.Name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var sb = new StringBuilder();
        sb.Append("apiVersion: v1\nkind: Secret\nmetadata:\n");
        sb.Append("  name: ").Append(secret.Name).Append('\n');
        sb.Append("  namespace: ").Append(secret.Namespace).Append('\n');
        sb.Append("  labels:\n");
        foreach (var (k, v) in secret.Labels) sb.Append("    ").Append(k).Append(": ").Append(v).Append('\n');
        sb.Append("  ownerReferences:\n");
        sb.Append("    - apiVersion: ").Append(secret.Owner.ApiVersion).Append('\n');
        sb.Append("      kind: ").Append(secret.Owner.Kind).Append('\n');
        sb.Append("      name: ").Append(secret.Owner.Name).Append('\n');
        sb.Append("      uid: ").Append(secret.Owner.Uid).Append('\n');
        sb.Append("      controller: true\n");
        sb.Append("type: Opaque\ndata:\n");
        foreach (var (k, v) in secret.StringData.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            sb.Append("  ").Append(k).Append(": ").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(v))).Append('\n');
        }
        WriteFileAtomically(path, sb.ToString(), secretFile: true);
        return Task.CompletedTask;
    }

    public Task DeleteSecretAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        var path = SecretPath(@namespace, name);
        if (File.Exists(path)) File.Delete(path);
        return Task.CompletedTask;
    }

    public Task WriteStatusAsync(string kind, ObjectMeta metadata, object status, CancellationToken cancellationToken)
    {
        var path = Path.Combine(StatusDir, Safe(metadata.Namespace ?? "default"), $"{kind.ToLowerInvariant()}.{Safe(metadata.Name)}.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var json = JsonSerializer.Serialize(status, status.GetType(), StatusJson);
        WriteFileAtomically(path, json + "\n", secretFile: false);
        return Task.CompletedTask;
    }

    /// <summary>Reads a status written by <see cref="WriteStatusAsync"/> (for tools and tests).</summary>
    public T? ReadStatus<T>(string kind, string @namespace, string name)
    {
        var path = Path.Combine(StatusDir, Safe(@namespace), $"{kind.ToLowerInvariant()}.{Safe(name)}.json");
        return File.Exists(path) ? JsonSerializer.Deserialize<T>(File.ReadAllText(path), TokenGateJson.Options) : default;
    }

    public string SecretPath(string @namespace, string name) => Path.Combine(SecretsDir, Safe(@namespace), Safe(name) + ".yaml");

    private static readonly JsonSerializerOptions StatusJson = new(TokenGateJson.Options) { WriteIndented = true };

    private static string Safe(string part)
    {
        if (part.Length == 0 || part.Contains('/') || part.Contains('\\') || part is "." or "..") throw new InvalidDataException($"Invalid object name '{part}'.");
        return part;
    }

    private static void WriteFileAtomically(string path, string content, bool secretFile)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, content);
        if (secretFile && !OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(tmp, path, overwrite: true);
    }
}
