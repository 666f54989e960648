using Gateway.Core.Resources;
using Gateway.Operator.Sources;

namespace Gateway.Operator.OAuth;

/// <summary>OAuth accounts from the file source's last pass; Secrets are manifest files; no Events (the log has them).</summary>
public sealed class FileOAuthAccounts(FileResourceSource source, FileSourceDriver driver) : IOAuthAccountSource
{
    public IOAuthSecretStore Secrets { get; } = new FileOAuthSecretStore(source);

    public IReadOnlyList<UpstreamAccount> ListOAuthAccounts() =>
        [.. (driver.LastSnapshot?.UpstreamAccounts ?? []).Where(a => a.Spec.Credentials.Oauth is not null)];

    public void Changed(string account) => driver.RequestPass();

    public Task EventAsync(UpstreamAccount account, bool warning, string reason, string message, CancellationToken cancellationToken) => Task.CompletedTask;
}
