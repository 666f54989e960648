using System.Diagnostics;
using System.Text.Json.Nodes;
using Gateway.Deploy.Tests.Chart;
using Gateway.Testing;
using static Gateway.Deploy.Tests.Manifests;

namespace Gateway.Deploy.Tests.Kustomize;

/// <summary>
/// config/default (kubectl apply -k) mirrors the chart: the same CRDs, the same RBAC and the same workloads as
/// `helm template tokengate -n tokengate-system` with the pepper in the tokengate-pepper Secret and the credential
/// keys in the tokengate-credential-keys Secret.
/// </summary>
public sealed class KustomizeMirrorTests
{
    private static readonly string[] MirroredFields = ["spec", "rules", "roleRef", "subjects", "automountServiceAccountToken"];

    private static async Task<Manifests> KustomizeAsync()
    {
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("kustomize");
        psi.ArgumentList.Add(Path.Combine(RepoPaths.Root, "config", "default"));
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(p.ExitCode == 0, "kubectl kustomize config/default failed: " + await stderr);
        return Parse(await stdout);
    }

    private static Task<Manifests> ChartAsync() =>
        Helm.TemplateAsync(set: ["pepper.existingSecret=tokengate-pepper", "credentialKeys.existingSecret=tokengate-credential-keys"], includeCrds: true);

    [Fact]
    public async Task Kustomize_renders_the_whole_installation_into_tokengate_system()
    {
        var k = await KustomizeAsync();
        Assert.Equal(3, k.OfKind("CustomResourceDefinition").Count());
        Assert.Equal(["tokengate-operator", "tokengate-portal", "tokengate-proxy"], k.OfKind("Deployment").Select(Name).Order(StringComparer.Ordinal));
        Assert.All(k.Objects.Where(o => Kind(o) is not ("Namespace" or "CustomResourceDefinition" or "ClusterRole" or "ClusterRoleBinding")),
            o => Assert.Equal("tokengate-system", Namespace(o)));
    }

    [Fact]
    public async Task Chart_and_kustomize_grant_the_same_RBAC_rules()
    {
        var chart = await ChartAsync();
        var k = await KustomizeAsync();
        Assert.Equal(Grants(k.OfKind("ClusterRole")).Order(), Grants(chart.OfKind("ClusterRole")).Order());
        Assert.Equal(Grants(k.OfKind("Role")).Order(), Grants(chart.OfKind("Role")).Order());
        HelmChartTests.AssertOperatorGrants(Grants(k.OfKind("ClusterRole")), Grants(k.OfKind("Role")));

        // Single-namespace mode grants the same rules, only as a Role.
        var single = await Helm.TemplateAsync(valuesFiles: ["single-namespace-values.yaml"]);
        Assert.Equal(Grants(k.OfKind("ClusterRole")).Order(), Grants(single.OfKind("Role").Where(r => Namespace(r) == "team-a")).Order());
    }

    [Fact]
    public async Task Chart_and_kustomize_ship_the_same_generated_CRDs()
    {
        var crdDir = Path.Combine(RepoPaths.Root, "config", "crd");
        var chartCrdDir = Path.Combine(Helm.ChartDirectory, "crds");
        var chartFiles = Directory.GetFiles(chartCrdDir, "*.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["tokengate.io_apikeys.yaml", "tokengate.io_upstreamaccounts.yaml", "tokengate.io_userquotas.yaml"], chartFiles);
        foreach (var f in chartFiles)
        {
            Assert.Equal(await File.ReadAllTextAsync(Path.Combine(crdDir, f!)), await File.ReadAllTextAsync(Path.Combine(chartCrdDir, f!)));
        }

        var chart = await ChartAsync();
        var k = await KustomizeAsync();
        foreach (var crd in k.OfKind("CustomResourceDefinition"))
        {
            Assert.True(JsonNode.DeepEquals(crd["spec"], chart.Get("CustomResourceDefinition", Name(crd))["spec"]), Name(crd));
        }
        Assert.Equal(3, chart.OfKind("CustomResourceDefinition").Count());
    }

    [Fact]
    public async Task Kustomize_workloads_equal_the_charts_rendering()
    {
        var chart = await ChartAsync();
        var k = await KustomizeAsync();
        var skipped = new HashSet<string>(["Namespace", "CustomResourceDefinition"], StringComparer.Ordinal);
        var compared = 0;
        foreach (var o in k.Objects.Where(o => !skipped.Contains(Kind(o))))
        {
            var twin = chart.Find(Kind(o), Name(o));
            Assert.True(twin is not null, $"{Kind(o)}/{Name(o)} is in config/ but not in the chart");
            Assert.Equal(Namespace(o), Namespace(twin));
            foreach (var field in MirroredFields)
            {
                Assert.True(JsonNode.DeepEquals(o[field], twin[field]),
                    $"{Kind(o)}/{Name(o)} {field} differs between config/ and the chart:\nconfig/: {o[field]?.ToJsonString()}\nchart:   {twin[field]?.ToJsonString()}");
            }
            compared++;
        }
        // Everything the chart renders with these values is mirrored (the chart adds nothing kustomize lacks).
        var chartObjects = chart.Objects.Where(o => !skipped.Contains(Kind(o))).Select(o => Kind(o) + "/" + Name(o)).Order(StringComparer.Ordinal);
        var kustomizeObjects = k.Objects.Where(o => !skipped.Contains(Kind(o))).Select(o => Kind(o) + "/" + Name(o)).Order(StringComparer.Ordinal);
        Assert.Equal(chartObjects, kustomizeObjects);
        Assert.True(compared >= 20, $"compared {compared} objects");
    }
}
