using System.Globalization;
using System.Security.Cryptography;
using Gateway.Core.Resources;

namespace Gateway.Portal.Admin;

/// <summary>
/// The exact kubectl commands an admin runs to act (the portal never writes cluster state: GitOps and kubectl do).
/// Short names: <c>uq</c> = UserQuota, <c>ak</c> = ApiKey. A rotation happens whenever the
/// <see cref="TokenGateApi.RotateAnnotation"/> value differs from the last one the operator acted on.
/// </summary>
public static class KubectlCommands
{
    /// <summary>Adds a grant to the UserQuota's spec.grants; each grant id credits the balance once, ever.</summary>
    public static string GrantCredit(string ns, string name, string grantId, decimal amount, string reason) =>
        $"kubectl patch uq {Arg(name)} -n {Arg(ns)} --type=json -p '[{{\"op\":\"add\",\"path\":\"/spec/grants/-\",\"value\":{{\"id\":\"{Json(grantId)}\",\"amount\":{amount.ToString(CultureInfo.InvariantCulture)},\"reason\":\"{Json(reason)}\"}}}}]'";

    public static string Suspend(string ns, string name, bool suspended = true) =>
        $"kubectl patch uq {Arg(name)} -n {Arg(ns)} --type=merge -p '{{\"spec\":{{\"suspended\":{(suspended ? "true" : "false")}}}}}'";

    public static string RotateKey(string ns, string name) =>
        $"kubectl annotate ak {Arg(name)} -n {Arg(ns)} {TokenGateApi.RotateAnnotation}=$(date +%s) --overwrite";

    /// <summary>A fresh grant id suggestion such as <c>grant-20261207-3f9a1c</c>.</summary>
    public static string NewGrantId(DateTimeOffset now) =>
        "grant-" + now.UtcDateTime.ToString("yyyyMMdd", CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));

    // Kubernetes names and namespaces are DNS labels/subdomains; anything else is quoted so a command stays one argument.
    private static string Arg(string value) =>
        value.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.') ? value : "'" + value.Replace("'", "", StringComparison.Ordinal) + "'";

    private static string Json(string value) =>
        value.Replace("\\", "", StringComparison.Ordinal).Replace("\"", "", StringComparison.Ordinal).Replace("'", "", StringComparison.Ordinal);
}
