using Gateway.Kubernetes.Client;

namespace Gateway.Kubernetes.Runtime;

/// <summary>Owner references and create-or-update of dependent objects (controller-runtime's controllerutil).</summary>
public static class Ownership
{
    /// <summary>
    /// The controller reference to put on an object the owner manages: garbage collection deletes it with the
    /// owner, and <see cref="Controller{T}.Owns{TOwned}"/> maps its changes back to the owner.
    /// </summary>
    public static OwnerReference ControllerReference(ResourceDefinition ownerDefinition, ObjectMetadata ownerMetadata) => new()
    {
        ApiVersion = ownerDefinition.ApiVersion,
        Kind = ownerDefinition.Kind,
        Name = ownerMetadata.Name ?? throw new ArgumentException("The owner has no name.", nameof(ownerMetadata)),
        Uid = ownerMetadata.Uid ?? throw new ArgumentException("The owner has no uid (read it from the server first).", nameof(ownerMetadata)),
        Controller = true,
        BlockOwnerDeletion = true,
    };

    /// <summary>Sets <paramref name="reference"/> on <paramref name="metadata"/>, replacing any reference to the same owner uid.</summary>
    /// <returns>True when the references changed.</returns>
    public static bool SetOwnerReference(ObjectMetadata metadata, OwnerReference reference)
    {
        metadata.OwnerReferences ??= [];
        var existing = metadata.OwnerReferences.FindIndex(r => r.Uid == reference.Uid);
        if (existing >= 0)
        {
            var e = metadata.OwnerReferences[existing];
            if (e.ApiVersion == reference.ApiVersion && e.Kind == reference.Kind && e.Name == reference.Name
                && e.Controller == reference.Controller && e.BlockOwnerDeletion == reference.BlockOwnerDeletion) return false;
            metadata.OwnerReferences[existing] = reference;
            return true;
        }
        if (reference.Controller == true && metadata.OwnerReferences.Any(r => r.Controller == true))
        {
            throw new InvalidOperationException($"Object {metadata.Namespace}/{metadata.Name} is already controlled by another owner.");
        }
        metadata.OwnerReferences.Add(reference);
        return true;
    }

    /// <summary>
    /// Reads the object and creates it from <paramref name="create"/> when missing; otherwise applies
    /// <paramref name="mutate"/> to a fresh copy and updates it only when it reports a change. Conflicts are
    /// retried on a fresh read.
    /// </summary>
    public static Task<(T Object, UpsertResult Result)> CreateOrUpdateAsync<T>(
        ResourceClient<T> client, string? ns, string name, Func<T> create, Func<T, bool> mutate, CancellationToken cancellationToken = default) where T : class =>
        ConflictRetry.RunAsync(async ct =>
        {
            var existing = await client.TryGetAsync(ns, name, ct);
            if (existing is null)
            {
                try
                {
                    return (await client.CreateAsync(create(), ns, ct), UpsertResult.Created);
                }
                catch (KubernetesAlreadyExistsException)
                {
                    // Created concurrently (or the cache was behind); go round again as an update.
                    throw new KubernetesConflictException(new KubernetesStatus { Code = 409, Reason = "Conflict", Message = $"{client.Definition.Kind} {name} appeared concurrently." });
                }
            }
            if (!mutate(existing)) return (existing, UpsertResult.Unchanged);
            return (await client.UpdateAsync(existing, ct), UpsertResult.Updated);
        }, cancellationToken: cancellationToken);
}

public enum UpsertResult
{
    Unchanged,
    Created,
    Updated,
}
