using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>
/// The operator's ServiceAccount and RBAC objects as an install creates them: rendered from the Helm chart
/// when <c>charts/tokengate/templates</c> exists and helm is at hand, else read from <c>config/rbac</c>
/// (the kustomize tree the chart mirrors).
/// </summary>
public static class OperatorRbac
{
    private static readonly HashSet<string> Kinds = ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"];

    public sealed record Manifests(string Source, string ServiceAccount, string Namespace, IReadOnlyList<JsonObject> Objects);

    public static async Task<Manifests> LoadAsync(string repoRoot, string ns)
    {
        var chart = Path.Combine(repoRoot, "charts", "tokengate");
        var helm = FindHelm(repoRoot);
        if (System.IO.Directory.Exists(Path.Combine(chart, "templates")) && helm is not null)
        {
            var rendered = await RenderAsync(helm, chart, ns);
            return Select("helm template " + chart, FakeCrdSchema.ParseYaml(rendered));
        }
        return FromKustomize(repoRoot);
    }

    /// <summary>The operator's RBAC as config/rbac declares it.</summary>
    public static Manifests FromKustomize(string repoRoot)
    {
        var docs = System.IO.Directory.GetFiles(Path.Combine(repoRoot, "config", "rbac"), "*.yaml")
            .Where(f => Path.GetFileName(f) != "kustomization.yaml")
            .Order(StringComparer.Ordinal)
            .SelectMany(f => FakeCrdSchema.ParseYaml(File.ReadAllText(f)));
        return Select("config/rbac", docs);
    }

    /// <summary>The operator's ServiceAccount and every role bound to it, with their bindings.</summary>
    public static Manifests Select(string source, IEnumerable<JsonObject> docs)
    {
        var all = docs.Where(d => d["kind"]?.GetValue<string>() is { } k && Kinds.Contains(k)).ToList();
        var sa = all.Where(d => d["kind"]!.GetValue<string>() == "ServiceAccount")
            .SingleOrDefault(d => d["metadata"]!["name"]!.GetValue<string>().EndsWith("operator", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"{source}: no ServiceAccount named *operator.");
        var saName = sa["metadata"]!["name"]!.GetValue<string>();
        var saNs = sa["metadata"]!["namespace"]?.GetValue<string>() ?? RealKubeClusterNames.OperatorNamespace;
        var bindings = all.Where(d => d["kind"]!.GetValue<string>() is "RoleBinding" or "ClusterRoleBinding")
            .Where(b => (b["subjects"] as JsonArray ?? []).Any(s => s?["kind"]?.GetValue<string>() == "ServiceAccount" && s["name"]?.GetValue<string>() == saName))
            .ToList();
        var roles = all.Where(r => r["kind"]!.GetValue<string>() is "Role" or "ClusterRole")
            .Where(r => bindings.Any(b => b["roleRef"]!["kind"]!.GetValue<string>() == r["kind"]!.GetValue<string>()
                && b["roleRef"]!["name"]!.GetValue<string>() == r["metadata"]!["name"]!.GetValue<string>()))
            .ToList();
        if (bindings.Count == 0) throw new InvalidOperationException($"{source}: nothing is bound to ServiceAccount {saName}.");
        return new Manifests(source, saName, saNs, [sa, .. roles, .. bindings]);
    }

    /// <summary>.tools/helm/helm (config/local/tools.sh), else helm on PATH; null when neither exists.</summary>
    public static string? FindHelm(string repoRoot)
    {
        var local = Path.Combine(repoRoot, ".tools", "helm", "helm");
        if (File.Exists(local)) return local;
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "helm")).FirstOrDefault(File.Exists);
    }

    private static async Task<string> RenderAsync(string helm, string chart, string ns)
    {
        var psi = new ProcessStartInfo(helm) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "template", "tokengate", chart, "--namespace", ns }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("Could not start helm.");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"helm template {chart} failed ({p.ExitCode}): {await stderr}");
        return await stdout;
    }
}
