using Gateway.Core.Resources;

namespace Gateway.Operator.OAuth;

/// <summary>
/// What the refresher needs from the source in use (Kubernetes or the file source): the OAuth accounts, their
/// Secrets, a way to have an account reconciled again soon (status, projection) and Events.
/// </summary>
public interface IOAuthAccountSource
{
    /// <summary>The UpstreamAccounts with oauth credentials that are not being deleted.</summary>
    IReadOnlyList<UpstreamAccount> ListOAuthAccounts();

    IOAuthSecretStore Secrets { get; }

    /// <summary>Asks for the account to be reconciled soon (its refresh state changed).</summary>
    void Changed(string account);

    /// <summary>Records an Event about the account where the source has them (Kubernetes); never throws.</summary>
    Task EventAsync(UpstreamAccount account, bool warning, string reason, string message, CancellationToken cancellationToken);
}
