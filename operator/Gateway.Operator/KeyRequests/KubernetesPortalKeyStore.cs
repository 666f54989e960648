using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Kubernetes.Client;
using Gateway.Operator.Kubernetes;
using Gateway.Operator.Sources;

namespace Gateway.Operator.KeyRequests;

/// <summary>
/// Kubernetes source: portal-created keys are ApiKey objects labelled tokengate.io/created-by=portal, created
/// with the finalizer already set (so no key is issued that a racing delete could leave behind). Deleting one
/// goes through the usual finalizer path of the ApiKey controller.
/// </summary>
public sealed class KubernetesPortalKeyStore(KubernetesOperator op) : IPortalKeyStore
{
    private readonly ResourceClient<ApiKey> _apiKeys = op.Client.Resource<ApiKey>(TokenGateResources.ApiKeys, TokenGateJson.Options);

    public IResourceSource Source => op.Source;

    public Task<ApiKey?> GetAsync(string @namespace, string name, CancellationToken cancellationToken) =>
        _apiKeys.TryGetAsync(@namespace, name, cancellationToken);

    public async Task<ApiKey> CreateAsync(ApiKey apiKey, CancellationToken cancellationToken)
    {
        apiKey.Metadata.Labels ??= [];
        apiKey.Metadata.Labels[KeyRequestContract.CreatedByLabel] = KeyRequestContract.CreatedByPortal;
        apiKey.Metadata.Finalizers = [TokenGateApi.Finalizer];
        try
        {
            return await _apiKeys.CreateAsync(apiKey, apiKey.Metadata.Namespace, cancellationToken);
        }
        catch (KubernetesAlreadyExistsException)
        {
            // A retried request (the previous leader stopped half-way): the name is derived from the request id.
            var existing = await _apiKeys.GetAsync(apiKey.Metadata.Namespace, apiKey.Metadata.Name, cancellationToken);
            if (!IsPortalCreated(existing)) throw new KeyRequestRejectedException("A key with the generated name already exists; try again.");
            return existing;
        }
    }

    public Task<ApiKey> SetDisabledAsync(ApiKey apiKey, bool disabled, CancellationToken cancellationToken) =>
        _apiKeys.PatchAsync(apiKey.Metadata.Namespace, apiKey.Metadata.Name, new { spec = new { disabled } }, cancellationToken);

    public async Task DeleteAsync(ApiKey apiKey, CancellationToken cancellationToken)
    {
        try
        {
            await _apiKeys.DeleteAsync(apiKey.Metadata.Namespace, apiKey.Metadata.Name,
                new DeleteOptions { Preconditions = new Preconditions(Uid: apiKey.Metadata.Uid) }, cancellationToken);
        }
        catch (KubernetesNotFoundException)
        {
            // Already gone.
        }
    }

    /// <summary>Nothing to exclude: controllers and requests share the reconciler's per-key lock.</summary>
    public Task<T> RunExclusiveAsync<T>(Func<Task<T>> action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(action);
        return action();
    }

    public bool IsPortalCreated(ApiKey apiKey) =>
        apiKey.Metadata.Labels?.GetValueOrDefault(KeyRequestContract.CreatedByLabel) == KeyRequestContract.CreatedByPortal;
}
