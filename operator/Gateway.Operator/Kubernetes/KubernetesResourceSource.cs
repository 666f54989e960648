using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Sources;
using KubeOwnerReference = Gateway.Kubernetes.Client.OwnerReference;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// The Kubernetes side of <see cref="IResourceSource"/>: issued keys become real Secrets owned by their
/// resource (so garbage collection removes them with it), and statuses go through the status subresource.
/// Secrets are read from the API, not a cache: whether a key must be re-issued depends on what the Secret
/// holds right now, and a lagging cache would make the operator issue twice.
/// </summary>
public sealed class KubernetesResourceSource : IResourceSource
{
    private const int MaxAttempts = 5;
    private const int MaxReadAbsent = 100_000;
    // "namespace/name" of Secrets the last read found missing (see ApplySecretAsync).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _readAbsent = new(StringComparer.Ordinal);
    private readonly ResourceClient<Secret> _secrets;
    private readonly Dictionary<string, ResourceClient<JsonObject>> _objects;

    public KubernetesResourceSource(KubernetesClient client)
    {
        _secrets = client.Resource<Secret>(ResourceDefinition.Secrets);
        _objects = new(StringComparer.Ordinal)
        {
            ["ApiKey"] = client.Resource<JsonObject>(TokenGateResources.ApiKeys),
            ["UserQuota"] = client.Resource<JsonObject>(TokenGateResources.UserQuotas),
            ["UpstreamAccount"] = client.Resource<JsonObject>(TokenGateResources.UpstreamAccounts),
        };
    }

    /// <summary>Status writes that changed something (observability for tools and tests).</summary>
    public long StatusWrites => Interlocked.Read(ref _statusWrites);

    private long _statusWrites;

    public async Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        var secret = await _secrets.TryGetAsync(@namespace, name, cancellationToken);
        var key = @namespace + "/" + name;
        if (secret is null)
        {
            // Bounded: names read as missing and never issued (e.g. an account's absent credentials) must not pile up.
            if (_readAbsent.Count >= MaxReadAbsent) _readAbsent.Clear();
            _readAbsent[key] = 0;
            return null;
        }
        _readAbsent.TryRemove(key, out _);
        return secret.Data ?? new Dictionary<string, byte[]>();
    }

    public async Task ApplySecretAsync(IssuedSecret secret, CancellationToken cancellationToken)
    {
        var data = secret.StringData.ToDictionary(p => p.Key, p => Encoding.UTF8.GetBytes(p.Value), StringComparer.Ordinal);
        var owner = new KubeOwnerReference
        {
            ApiVersion = secret.Owner.ApiVersion,
            Kind = secret.Owner.Kind,
            Name = secret.Owner.Name,
            Uid = secret.Owner.Uid,
            Controller = secret.Owner.Controller,
            BlockOwnerDeletion = secret.Owner.BlockOwnerDeletion,
        };
        Secret Create() => new()
        {
            Metadata = new ObjectMetadata
            {
                Name = secret.Name,
                Namespace = secret.Namespace,
                Labels = new Dictionary<string, string>(secret.Labels, StringComparer.Ordinal),
                OwnerReferences = [owner],
            },
            Type = "Opaque",
            Data = data,
        };
        // The reconcile that issues a key has just read its Secret as missing: create it straight away instead of
        // reading it a second time. Anyone who created it in between makes this fail, and the read-update path runs.
        if (_readAbsent.TryRemove(secret.Namespace + "/" + secret.Name, out _))
        {
            try
            {
                await _secrets.CreateAsync(Create(), secret.Namespace, cancellationToken);
                return;
            }
            catch (KubernetesAlreadyExistsException)
            {
                // Someone created it since the read: update it as usual.
            }
        }
        await Ownership.CreateOrUpdateAsync(_secrets, secret.Namespace, secret.Name,
            Create,
            existing =>
            {
                existing.Data = data;
                existing.StringData = null;
                existing.Metadata.Labels ??= [];
                foreach (var (k, v) in secret.Labels) existing.Metadata.Labels[k] = v;
                // One controller per object: replace any other controller reference, keep plain references.
                var refs = (existing.Metadata.OwnerReferences ?? []).Where(r => r.Controller != true && r.Uid != owner.Uid).ToList();
                refs.Add(owner);
                existing.Metadata.OwnerReferences = refs;
                return true;
            }, cancellationToken);
    }

    public async Task DeleteSecretAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        try
        {
            await _secrets.DeleteAsync(@namespace, name, null, cancellationToken);
        }
        catch (KubernetesNotFoundException)
        {
            // Already gone (or garbage-collected with its owner).
        }
    }

    /// <summary>
    /// Replaces the status through the /status subresource: read, set, write with the read's
    /// resourceVersion; a conflict re-reads and re-applies. Unchanged statuses are not written, and an object
    /// that is gone or was re-created (another uid) is left alone.
    /// </summary>
    public async Task WriteStatusAsync(string kind, ObjectMeta metadata, object status, CancellationToken cancellationToken)
    {
        if (!_objects.TryGetValue(kind, out var client)) throw new ArgumentException($"'{kind}' is not a TokenGate kind.", nameof(kind));
        var ns = metadata.Namespace ?? "default";
        var desired = JsonSerializer.SerializeToNode(status, status.GetType(), TokenGateJson.Options);
        for (var attempt = 1; ; attempt++)
        {
            JsonObject current;
            try
            {
                current = await client.GetAsync(ns, metadata.Name, cancellationToken);
            }
            catch (KubernetesNotFoundException)
            {
                return;
            }
            if (metadata.Uid is not null && current["metadata"]?["uid"]?.GetValue<string>() is { } uid && uid != metadata.Uid) return;
            if (SameStatus(current["status"], desired, status.GetType())) return;
            current["status"] = desired?.DeepClone();
            try
            {
                await client.UpdateStatusAsync(current, cancellationToken);
                Interlocked.Increment(ref _statusWrites);
                return;
            }
            catch (KubernetesConflictException) when (attempt < MaxAttempts)
            {
                // The object changed since the read (spec edit, finalizer): re-read and re-apply.
            }
            catch (KubernetesNotFoundException)
            {
                return;
            }
        }
    }

    /// <summary>Compares through the C# type so formatting differences (times, decimals) don't count as changes.</summary>
    private static bool SameStatus(JsonNode? stored, JsonNode? desired, Type type)
    {
        if (stored is null || desired is null) return stored is null && desired is null;
        try
        {
            var typed = stored.Deserialize(type, TokenGateJson.Options);
            return JsonNode.DeepEquals(JsonSerializer.SerializeToNode(typed, type, TokenGateJson.Options), desired);
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
