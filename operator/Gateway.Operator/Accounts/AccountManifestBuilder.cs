using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Json;
using Gateway.Core.Resources;

namespace Gateway.Operator.Accounts;

/// <summary>The two objects of one imported account. Holds tokens (in the Secret): <see cref="ToString"/> does not.</summary>
public sealed record AccountManifest(string Name, ImportedAccount Account, JsonObject Secret, JsonObject UpstreamAccount)
{
    public override string ToString() => $"{Name} ({Account})";
}

/// <summary>
/// Builds the Secret (the normalized auth JSON under <see cref="ImportedAccount.SecretKey"/>) and the UpstreamAccount
/// (oauth credentials referring to that Secret) of an account, as the API server and the file source read them.
/// </summary>
public static class AccountManifestBuilder
{
    public const string TypeLabel = "tokengate.io/account-type";
    public const string SourceAnnotation = "tokengate.io/imported-from";
    public const string EmailAnnotation = "tokengate.io/account-email";
    public const string AccountIdAnnotation = "tokengate.io/account-id";
    /// <summary>The header the ChatGPT (Codex) backend reads the account id from.</summary>
    public const string CodexAccountHeader = "ChatGPT-Account-Id";

    public static AccountManifest Build(string name, ImportedAccount account, AccountTarget target, ImportSettings settings)
    {
        ArgumentNullException.ThrowIfNull(account);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(settings);
        var labels = new Dictionary<string, string>(settings.Labels, StringComparer.Ordinal) { [TypeLabel] = account.Type };
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal) { [SourceAnnotation] = Path.GetFileName(account.SourceFile) };
        if (account.Email is not null) annotations[EmailAnnotation] = account.Email;
        if (account.AccountId is not null) annotations[AccountIdAnnotation] = account.AccountId;

        var secretName = AccountNaming.SecretName(name);
        var ua = new UpstreamAccount
        {
            Metadata = new ObjectMeta { Name = name, Namespace = settings.Namespace, Labels = labels, Annotations = annotations },
            Spec = new UpstreamAccountSpec
            {
                Provider = target.Provider,
                BaseUrl = target.BaseUrl,
                Credentials = new UpstreamCredentials
                {
                    Oauth = new OAuthCredentials { SecretRef = new SecretReference { Name = secretName }, TokenUrl = target.TokenUrl, ClientId = target.ClientId },
                },
                Models = [.. target.Models.Select(m => new UpstreamModel { Name = m })],
                Priority = settings.Priority ?? 0,
                Weight = settings.Weight ?? 1,
                // The ChatGPT (Codex) backend wants the account id on every request.
                Headers = account.Type == "codex" && account.AccountId is not null
                    ? new Dictionary<string, string>(StringComparer.Ordinal) { [CodexAccountHeader] = account.AccountId }
                    : null,
            },
        };
        var uaNode = JsonSerializer.SerializeToNode(ua, TokenGateJson.Options)!.AsObject();

        var secret = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Secret",
            ["metadata"] = new JsonObject
            {
                ["name"] = secretName,
                ["namespace"] = settings.Namespace,
                ["labels"] = new JsonObject { [TypeLabel] = account.Type },
                ["annotations"] = new JsonObject { [SourceAnnotation] = annotations[SourceAnnotation] },
            },
            ["type"] = "Opaque",
            ["data"] = new JsonObject { [ImportedAccount.SecretKey] = Convert.ToBase64String(Encoding.UTF8.GetBytes(account.ToAuthJson())) },
        };
        return new AccountManifest(name, account, secret, uaNode);
    }
}
