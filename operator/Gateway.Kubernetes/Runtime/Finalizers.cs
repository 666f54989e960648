using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;

namespace Gateway.Kubernetes.Runtime;

/// <summary>client-go's retry.RetryOnConflict: re-run a read-modify-write while the server reports a conflict.</summary>
public static class ConflictRetry
{
    public static async Task<TResult> RunAsync<TResult>(Func<CancellationToken, Task<TResult>> attempt, int maxAttempts = 5, CancellationToken cancellationToken = default)
    {
        for (var i = 1; ; i++)
        {
            try
            {
                return await attempt(cancellationToken);
            }
            catch (KubernetesConflictException) when (i < maxAttempts)
            {
                // Short jittered pause (client-go DefaultRetry: 10 ms steps with jitter).
                await Task.Delay(TimeSpan.FromMilliseconds(10 + Random.Shared.Next(5)), cancellationToken);
            }
        }
    }
}

/// <summary>
/// Adds and removes finalizers with a merge patch that carries the object's resourceVersion, so a concurrent
/// change makes the patch fail with a conflict (and it is retried on a fresh read) instead of being lost.
/// </summary>
public static class Finalizers
{
    public static bool Has(ObjectMetadata metadata, string finalizer) => metadata.Finalizers?.Contains(finalizer) == true;

    /// <summary>Ensures the finalizer is present; returns the object as stored afterwards.</summary>
    public static Task<T> AddAsync<T>(ResourceClient<T> client, string? ns, string name, string finalizer, CancellationToken cancellationToken = default) where T : class =>
        ConflictRetry.RunAsync(async ct =>
        {
            var entry = await client.GetEntryAsync(ns, name, ct);
            if (Has(entry.Metadata, finalizer)) return entry.Object;
            if (entry.Metadata.DeletionTimestamp is not null) return entry.Object;
            var next = new List<string>(entry.Metadata.Finalizers ?? []) { finalizer };
            return await client.PatchAsync(ns, name, Patch(next, entry.Metadata.ResourceVersion), ct);
        }, cancellationToken: cancellationToken);

    /// <summary>
    /// Ensures the finalizer is present, starting from <paramref name="known"/> (e.g. the informer's cached copy)
    /// instead of a read: one patch when the cache is current, which is the common case. A stale copy makes the
    /// patch conflict (its resourceVersion is a precondition), and then it goes the read-modify-write way.
    /// </summary>
    public static async Task<T> AddAsync<T>(ResourceClient<T> client, ObjectMetadata known, string finalizer, CancellationToken cancellationToken = default) where T : class
    {
        var ns = known.Namespace;
        var name = known.Name!;
        if (!Has(known, finalizer) && known.DeletionTimestamp is null && known.ResourceVersion is { Length: > 0 } rv)
        {
            try
            {
                return await client.PatchAsync(ns, name, Patch(new List<string>(known.Finalizers ?? []) { finalizer }, rv), cancellationToken);
            }
            catch (KubernetesConflictException)
            {
                // The cached copy was behind: read the object and retry as usual.
            }
        }
        return await AddAsync(client, ns, name, finalizer, cancellationToken);
    }

    /// <summary>
    /// Removes the finalizer; returns the object as stored afterwards, or null when it is gone (removing the
    /// last finalizer of an object being deleted deletes it).
    /// </summary>
    public static Task<T?> RemoveAsync<T>(ResourceClient<T> client, string? ns, string name, string finalizer, CancellationToken cancellationToken = default) where T : class =>
        ConflictRetry.RunAsync<T?>(async ct =>
        {
            ObjectEntry<T> entry;
            try
            {
                entry = await client.GetEntryAsync(ns, name, ct);
            }
            catch (KubernetesNotFoundException)
            {
                return null;
            }
            if (!Has(entry.Metadata, finalizer)) return entry.Object;
            var next = entry.Metadata.Finalizers!.Where(f => f != finalizer).ToList();
            try
            {
                var updated = await client.PatchAsync(ns, name, Patch(next, entry.Metadata.ResourceVersion), ct);
                return next.Count == 0 && entry.Metadata.DeletionTimestamp is not null ? null : updated;
            }
            catch (KubernetesNotFoundException)
            {
                return null;
            }
        }, cancellationToken: cancellationToken);

    private static JsonObject Patch(List<string> finalizers, string? resourceVersion)
    {
        var arr = new JsonArray();
        foreach (var f in finalizers) arr.Add(f);
        var meta = new JsonObject { ["finalizers"] = arr };
        if (resourceVersion is not null) meta["resourceVersion"] = resourceVersion;
        return new JsonObject { ["metadata"] = meta };
    }
}
