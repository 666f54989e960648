using Gateway.Core.Resources;
using Gateway.Operator.Sources;

namespace Gateway.Operator.KeyRequests;

/// <summary>
/// Where the ApiKey resources behind portal requests live: created, toggled and deleted as Kubernetes objects
/// (Kubernetes source) or as manifests under the state directory (file source).
/// </summary>
public interface IPortalKeyStore
{
    /// <summary>The source the reconciler issues through (Secrets, status).</summary>
    IResourceSource Source { get; }

    /// <summary>The ApiKey as declared now, or null when it does not exist.</summary>
    Task<ApiKey?> GetAsync(string @namespace, string name, CancellationToken cancellationToken);

    /// <summary>Creates the ApiKey; when a retried request finds it already there, returns the existing one.</summary>
    Task<ApiKey> CreateAsync(ApiKey apiKey, CancellationToken cancellationToken);

    /// <summary>Sets spec.disabled of a portal-created ApiKey and returns the updated object.</summary>
    Task<ApiKey> SetDisabledAsync(ApiKey apiKey, bool disabled, CancellationToken cancellationToken);

    /// <summary>Deletes a portal-created ApiKey (its key is revoked by the usual delete path).</summary>
    Task DeleteAsync(ApiKey apiKey, CancellationToken cancellationToken);

    /// <summary>True when the ApiKey is one the portal may delete (created for a portal request).</summary>
    bool IsPortalCreated(ApiKey apiKey);

    /// <summary>Runs one request's work so that the source's own passes cannot interleave with it.</summary>
    Task<T> RunExclusiveAsync<T>(Func<Task<T>> action, CancellationToken cancellationToken);
}

/// <summary>A request the operator refuses, with a message meant for the user.</summary>
public sealed class KeyRequestRejectedException(string message) : Exception(message);
