using System.Text;
using System.Text.Json;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Operator.Reconcilers;
using Gateway.Operator.Sources;

namespace Gateway.Operator.KeyRequests;

/// <summary>
/// File source: portal-created keys are manifests under &lt;state-dir&gt;/portal/apikeys/&lt;namespace&gt;/&lt;name&gt;.yaml,
/// which the file source reads with its folder. Keys in the watched folder are GitOps-declared.
/// </summary>
public sealed class FilePortalKeyStore(FileResourceSource source, FileSourceDriver driver, TokenGateReconciler reconciler) : IPortalKeyStore
{
    public IResourceSource Source => source;

    public Task<ApiKey?> GetAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        var snapshot = source.Load();
        return Task.FromResult(snapshot.ApiKeys.FirstOrDefault(k => (k.Metadata.Namespace ?? "default") == @namespace && k.Metadata.Name == name));
    }

    public async Task<ApiKey> CreateAsync(ApiKey apiKey, CancellationToken cancellationToken)
    {
        var ns = apiKey.Metadata.Namespace ?? "default";
        if (!File.Exists(source.PortalKeyPath(ns, apiKey.Metadata.Name))) source.WritePortalKey(ns, apiKey.Metadata.Name, Manifest(apiKey));
        driver.RequestPass();
        return await GetAsync(ns, apiKey.Metadata.Name, cancellationToken)
            ?? throw new InvalidOperationException($"The manifest written for ApiKey {apiKey.Key} could not be read back.");
    }

    public async Task<ApiKey> SetDisabledAsync(ApiKey apiKey, bool disabled, CancellationToken cancellationToken)
    {
        var ns = apiKey.Metadata.Namespace ?? "default";
        apiKey.Spec.Disabled = disabled;
        source.WritePortalKey(ns, apiKey.Metadata.Name, Manifest(apiKey));
        driver.RequestPass();
        return await GetAsync(ns, apiKey.Metadata.Name, cancellationToken) ?? apiKey;
    }

    public async Task DeleteAsync(ApiKey apiKey, CancellationToken cancellationToken)
    {
        var ns = apiKey.Metadata.Namespace ?? "default";
        source.DeletePortalKey(ns, apiKey.Metadata.Name);
        // Revoke now rather than at the next pass (which would find the manifest gone and do the same).
        await reconciler.DeleteApiKeyAsync(ns, apiKey.Metadata.Name, apiKey.EffectiveSecretName, source, cancellationToken);
        driver.RequestPass();
    }

    public Task<T> RunExclusiveAsync<T>(Func<Task<T>> action, CancellationToken cancellationToken) =>
        driver.RunExclusiveAsync(action, cancellationToken);

    /// <summary>Only keys whose manifest is in the portal folder: a label in a GitOps manifest does not make it the portal's.</summary>
    public bool IsPortalCreated(ApiKey apiKey) =>
        File.Exists(source.PortalKeyPath(apiKey.Metadata.Namespace ?? "default", apiKey.Metadata.Name));

    /// <summary>The manifest of a portal-created key: YAML whose scalars are JSON-quoted (JSON strings are valid YAML).</summary>
    public static string Manifest(ApiKey apiKey)
    {
        static string Q(string s) => JsonSerializer.Serialize(s);
        var spec = apiKey.Spec;
        var sb = new StringBuilder();
        sb.Append("# Created by the TokenGate operator for a portal request; deleted from the portal.\n");
        sb.Append("apiVersion: ").Append(TokenGateApi.ApiVersion).Append("\nkind: ApiKey\nmetadata:\n");
        sb.Append("  name: ").Append(apiKey.Metadata.Name).Append('\n');
        sb.Append("  namespace: ").Append(apiKey.Metadata.Namespace ?? "default").Append('\n');
        sb.Append("  labels:\n    ").Append(KeyRequestContract.CreatedByLabel).Append(": ").Append(KeyRequestContract.CreatedByPortal).Append('\n');
        if (apiKey.Metadata.Annotations is { Count: > 0 } annotations)
        {
            sb.Append("  annotations:\n");
            foreach (var (k, v) in annotations) sb.Append("    ").Append(k).Append(": ").Append(Q(v)).Append('\n');
        }
        sb.Append("spec:\n");
        sb.Append("  owner: ").Append(spec.Owner).Append('\n');
        if (spec.Description is { } d) sb.Append("  description: ").Append(Q(d)).Append('\n');
        if (spec.ExpiresAt is { } e) sb.Append("  expiresAt: ").Append(Q(e.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture))).Append('\n');
        if (spec.AllowedModels.Count > 0)
        {
            sb.Append("  allowedModels:\n");
            foreach (var m in spec.AllowedModels) sb.Append("    - ").Append(Q(m)).Append('\n');
        }
        sb.Append("  disabled: ").Append(spec.Disabled ? "true" : "false").Append('\n');
        return sb.ToString();
    }
}
