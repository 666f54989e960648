using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;

namespace Gateway.Operator.OAuth;

/// <summary>
/// The Secret in Kubernetes: checks use the informer cache, a refresh reads the API server, and the write is an
/// update carrying the read's resourceVersion, so the API server refuses it if anyone changed the Secret since.
/// </summary>
public sealed class KubernetesOAuthSecretStore(ResourceClient<Secret> secrets, Informer<Secret> cache) : IOAuthSecretStore
{
    public async Task<VersionedSecret?> ReadAsync(string @namespace, string name, bool fresh, CancellationToken cancellationToken)
    {
        ObjectEntry<Secret>? entry;
        if (fresh)
        {
            try
            {
                entry = await secrets.GetEntryAsync(@namespace, name, cancellationToken);
            }
            catch (KubernetesNotFoundException)
            {
                return null;
            }
        }
        else
        {
            entry = cache.Store.GetEntry(ObjectKey.Of(@namespace, name));
        }
        if (entry is null) return null;
        return new VersionedSecret(entry.Object.Data ?? new Dictionary<string, byte[]>(), entry.Metadata.ResourceVersion ?? "");
    }

    public async Task<SecretWriteResult> WriteAsync(string @namespace, string name, string expectedVersion, string key, byte[] value, CancellationToken cancellationToken)
    {
        Secret current;
        try
        {
            current = await secrets.GetAsync(@namespace, name, cancellationToken);
        }
        catch (KubernetesNotFoundException)
        {
            return SecretWriteResult.NotFound;
        }
        if (current.Metadata.ResourceVersion != expectedVersion) return SecretWriteResult.Conflict;
        current.Data ??= new Dictionary<string, byte[]>(StringComparer.Ordinal);
        current.Data[key] = value;
        current.StringData = null;
        try
        {
            // The resourceVersion in the body is the precondition: a change in between is a 409.
            await secrets.UpdateAsync(current, cancellationToken);
            return SecretWriteResult.Written;
        }
        catch (KubernetesConflictException)
        {
            return SecretWriteResult.Conflict;
        }
        catch (KubernetesNotFoundException)
        {
            return SecretWriteResult.NotFound;
        }
    }
}
