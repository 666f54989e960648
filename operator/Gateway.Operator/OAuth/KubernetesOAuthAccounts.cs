using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Kubernetes;

namespace Gateway.Operator.OAuth;

/// <summary>OAuth accounts from the UpstreamAccount informer; Events through the operator's recorder.</summary>
public sealed class KubernetesOAuthAccounts(KubernetesOperator op) : IOAuthAccountSource
{
    public IOAuthSecretStore Secrets { get; } = new KubernetesOAuthSecretStore(op.Client.Resource<Secret>(ResourceDefinition.Secrets), op.SecretInformer);

    public IReadOnlyList<UpstreamAccount> ListOAuthAccounts() =>
        [.. op.UpstreamAccountInformer.Store.List()
            .Where(e => e.Metadata.DeletionTimestamp is null && e.Object.Spec.Credentials.Oauth is not null)
            .Select(e => e.Object)];

    public void Changed(string account) => op.EnqueueUpstream(account);

    public async Task EventAsync(UpstreamAccount account, bool warning, string reason, string message, CancellationToken cancellationToken)
    {
        var meta = op.UpstreamAccountInformer.Store.GetEntry(account.Key)?.Metadata;
        if (meta is null) return;
        var involved = EventRecorder.ReferenceTo(TokenGateResources.UpstreamAccounts, meta);
        await op.Events.RecordAsync(involved, warning ? EventRecorder.Warning : EventRecorder.Normal, reason, message, cancellationToken);
    }
}
