using System.Text;
using System.Text.Json.Nodes;
using static Gateway.Deploy.Tests.Manifests;

namespace Gateway.Deploy.Tests.Chart;

/// <summary>helm lint and helm template over the default values and every file in charts/tokengate/ci/.</summary>
public sealed class HelmChartTests
{
    private static List<string> ValuesFileNames() =>
        [.. Directory.GetFiles(Path.Combine(Helm.ChartDirectory, "ci"), "*-values.yaml").Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal)];

    public static TheoryData<string> ValuesFiles() => new(ValuesFileNames());

    private static readonly string[] Components = ["operator", "proxy", "portal"];

    [Fact]
    public void The_ci_folder_holds_the_realistic_values_files()
    {
        Assert.Equal(["external-redis-values.yaml", "ingress-values.yaml", "monitoring-values.yaml", "single-namespace-values.yaml"],
            ValuesFileNames());
    }

    [Fact]
    public async Task Lint_passes_strictly_with_the_default_values()
    {
        await Helm.RunAsync("lint", "--strict", Helm.ChartDirectory);
    }

    [Theory]
    [MemberData(nameof(ValuesFiles))]
    public async Task Lint_passes_strictly_with_each_values_file(string valuesFile)
    {
        await Helm.RunAsync("lint", "--strict", Helm.ChartDirectory, "-f", Helm.ValuesFile(valuesFile));
    }

    [Theory]
    [InlineData("podSecurityContext.runAsNonRoot=false", "runAsNonRoot")]
    [InlineData("securityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem")]
    [InlineData("proxy.managementPort=0", "managementPort")]
    [InlineData("operator.watchNamespace=Not_A_Namespace", "watchNamespace")]
    [InlineData("redis.existingSecret=", "existingSecret")]
    [InlineData("proxy.replicaCount=3", "replicaCount")]
    public async Task The_values_schema_rejects_unsafe_or_mistyped_values(string set, string mentioned)
    {
        var (code, _, stderr) = await Helm.TryRunAsync("template", "tg", Helm.ChartDirectory, "--set", set);
        Assert.NotEqual(0, code);
        Assert.Contains(mentioned, stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [MemberData(nameof(ValuesFiles))]
    public async Task Every_pod_is_restricted_non_root_read_only_with_only_tmp_writable(string? valuesFile)
    {
        var m = await Helm.TemplateAsync(valuesFiles: valuesFile is null ? [] : [valuesFile]);
        var deployments = m.OfKind("Deployment").ToList();
        Assert.NotEmpty(deployments);
        foreach (var d in deployments)
        {
            var pod = PodSpec(d);
            var psc = pod["securityContext"]!;
            Assert.True(psc["runAsNonRoot"]!.GetValue<bool>(), Name(d));
            Assert.True(psc["runAsUser"]!.GetValue<long>() > 0, Name(d));
            Assert.True(psc["runAsGroup"]!.GetValue<long>() > 0, Name(d));
            Assert.Equal("RuntimeDefault", psc["seccompProfile"]!["type"]!.GetValue<string>());
            Assert.NotEqual("default", pod["serviceAccountName"]?.GetValue<string>() ?? "default");

            var c = Container(d);
            var sc = c["securityContext"]!;
            Assert.True(sc["readOnlyRootFilesystem"]!.GetValue<bool>(), Name(d));
            Assert.False(sc["allowPrivilegeEscalation"]!.GetValue<bool>(), Name(d));
            Assert.Equal(["ALL"], Strings(sc["capabilities"]!["drop"]));
            Assert.Null(sc["capabilities"]!["add"]);
            Assert.Null(sc["privileged"]);

            // Writable: exactly one emptyDir, on /tmp; every other mount is a read-only Secret.
            var volumes = pod["volumes"]!.AsArray().ToDictionary(v => v!["name"]!.GetValue<string>(), v => v!);
            foreach (var mount in c["volumeMounts"]!.AsArray())
            {
                var volume = volumes[mount!["name"]!.GetValue<string>()];
                if (volume["emptyDir"] is not null)
                {
                    Assert.Equal("/tmp", mount["mountPath"]!.GetValue<string>());
                }
                else
                {
                    Assert.NotNull(volume["secret"]);
                    Assert.True(mount["readOnly"]?.GetValue<bool>() == true, $"{Name(d)}: {mount["mountPath"]} must be read-only");
                }
            }
            Assert.Contains(c["volumeMounts"]!.AsArray(), mnt => mnt!["mountPath"]!.GetValue<string>() == "/tmp");
            Assert.Equal("/tmp", Env(c)["TMPDIR"]["value"]!.GetValue<string>());
            // Log collectors get one JSON object per line unless the values ask for text.
            Assert.Equal("json", Env(c)["TokenGate__LogFormat"]["value"]!.GetValue<string>());

            Assert.NotNull(c["resources"]!["requests"]!["cpu"]);
            Assert.NotNull(c["resources"]!["requests"]!["memory"]);
            Assert.NotNull(c["resources"]!["limits"]!["memory"]);
        }
    }

    [Fact]
    public async Task Probes_and_metrics_use_the_management_ports_and_public_services_expose_only_public_ports()
    {
        var m = await Helm.TemplateAsync(valuesFiles: ["monitoring-values.yaml"]);
        var expected = new Dictionary<string, (int Public, int Management)>
        {
            ["operator"] = (0, 8082),
            ["proxy"] = (8080, 8090),
            ["portal"] = (8081, 8091),
        };
        foreach (var (component, (publicPort, management)) in expected)
        {
            var c = Container(m.Get("Deployment", "tokengate-" + component));
            Assert.Equal(("/healthz", management), (c["livenessProbe"]!["httpGet"]!["path"]!.GetValue<string>(), c["livenessProbe"]!["httpGet"]!["port"]!.GetValue<int>()));
            Assert.Equal(("/readyz", management), (c["readinessProbe"]!["httpGet"]!["path"]!.GetValue<string>(), c["readinessProbe"]!["httpGet"]!["port"]!.GetValue<int>()));
            if (c["startupProbe"] is { } startup) Assert.Equal(management, startup["httpGet"]!["port"]!.GetValue<int>());
            var containerPorts = c["ports"]!.AsArray().Select(p => p!["containerPort"]!.GetValue<int>()).Order().ToList();
            Assert.Equal(publicPort == 0 ? [management] : [publicPort, management], containerPorts);

            var metrics = m.Get("Service", $"tokengate-{component}-metrics");
            var port = Assert.Single(metrics["spec"]!["ports"]!.AsArray())!;
            Assert.Equal(("management", management), (port["name"]!.GetValue<string>(), port["targetPort"]!.GetValue<int>()));
            Assert.Equal("true", metrics["metadata"]!["labels"]!["tokengate.io/metrics"]!.GetValue<string>());
            if (publicPort != 0)
            {
                var service = m.Get("Service", "tokengate-" + component);
                Assert.Equal([publicPort], service["spec"]!["ports"]!.AsArray().Select(p => p!["targetPort"]!.GetValue<int>()));
            }
            Assert.Equal(management.ToString(System.Globalization.CultureInfo.InvariantCulture),
                m.Get("Deployment", "tokengate-" + component)["spec"]!["template"]!["metadata"]!["annotations"]!["prometheus.io/port"]!.GetValue<string>());
        }

        // The operator migrates the schema before its listener opens: a startup probe, not liveness, covers that wait.
        Assert.True(Container(m.Get("Deployment", "tokengate-operator"))["startupProbe"]!["failureThreshold"]!.GetValue<int>() * 5 >= 300);

        // The ServiceMonitor scrapes exactly the three management Services, on the port they name.
        var monitor = Assert.Single(m.OfKind("ServiceMonitor"));
        var selector = monitor["spec"]!["selector"]!["matchLabels"]!.AsObject();
        var selected = m.OfKind("Service").Where(s => selector.All(l => s["metadata"]!["labels"]![l.Key]?.GetValue<string>() == l.Value!.GetValue<string>()))
            .Select(Name).Order(StringComparer.Ordinal);
        Assert.Equal(["tokengate-operator-metrics", "tokengate-portal-metrics", "tokengate-proxy-metrics"], selected);
        var endpoint = Assert.Single(monitor["spec"]!["endpoints"]!.AsArray())!;
        Assert.Equal(("management", "/metrics"), (endpoint["port"]!.GetValue<string>(), endpoint["path"]!.GetValue<string>()));
        Assert.Equal("kube-prometheus-stack", monitor["metadata"]!["labels"]!["release"]!.GetValue<string>());
    }

    [Fact]
    public async Task Only_the_operator_gets_a_Kubernetes_token_and_RBAC()
    {
        var m = await Helm.TemplateAsync();
        foreach (var component in new[] { "proxy", "portal" })
        {
            var pod = PodSpec(m.Get("Deployment", "tokengate-" + component));
            Assert.False(pod["automountServiceAccountToken"]!.GetValue<bool>());
            var sa = m.Get("ServiceAccount", pod["serviceAccountName"]!.GetValue<string>());
            Assert.False(sa["automountServiceAccountToken"]!.GetValue<bool>());
        }
        var operatorPod = PodSpec(m.Get("Deployment", "tokengate-operator"));
        Assert.True(operatorPod["automountServiceAccountToken"]!.GetValue<bool>());
        Assert.Equal(2, m.Get("Deployment", "tokengate-operator")["spec"]!["replicas"]!.GetValue<int>());

        // Every binding names the operator's ServiceAccount and nothing else.
        var bindings = m.OfKind("RoleBinding").Concat(m.OfKind("ClusterRoleBinding")).ToList();
        Assert.Equal(2, bindings.Count);
        foreach (var b in bindings)
        {
            var subject = Assert.Single(b["subjects"]!.AsArray())!;
            Assert.Equal(("ServiceAccount", "tokengate-operator", "tokengate-system"),
                (subject["kind"]!.GetValue<string>(), subject["name"]!.GetValue<string>(), subject["namespace"]!.GetValue<string>()));
        }
        AssertOperatorGrants(Grants(m.OfKind("ClusterRole")), Grants(m.OfKind("Role")));
        Assert.Equal("tokengate-system", Namespace(Assert.Single(m.OfKind("Role"))));
    }

    /// <summary>The exact set the operator's code needs (see config/rbac and tests/Gateway.Operator.Tests ManifestTests).</summary>
    internal static void AssertOperatorGrants(HashSet<(string Group, string Resource, string Verb)> watched, HashSet<(string Group, string Resource, string Verb)> leaderElection)
    {
        Assert.DoesNotContain(watched.Concat(leaderElection), g => g.Group == "*" || g.Resource == "*" || g.Verb == "*");
        foreach (var r in new[] { "apikeys", "userquotas", "upstreamaccounts" })
        {
            // ApiKeys are also created and deleted, for portal key requests.
            string[] verbs = r == "apikeys" ? ["create", "delete", "get", "list", "patch", "update", "watch"] : ["get", "list", "patch", "update", "watch"];
            Assert.Equal(verbs, watched.Where(g => g.Group == "tokengate.io" && g.Resource == r).Select(g => g.Verb).Order());
            Assert.Equal(["patch", "update"], watched.Where(g => g.Resource == r + "/status").Select(g => g.Verb).Order());
            Assert.Equal(["update"], watched.Where(g => g.Resource == r + "/finalizers").Select(g => g.Verb));
        }
        Assert.Equal(["create", "delete", "get", "list", "patch", "update", "watch"], watched.Where(g => g.Group == "" && g.Resource == "secrets").Select(g => g.Verb).Order());
        Assert.Equal(["create", "patch"], watched.Where(g => g.Group == "" && g.Resource == "events").Select(g => g.Verb).Order());
        Assert.Equal(3 * 8 + 2 + 7 + 2, watched.Count);
        Assert.Equal([("coordination.k8s.io", "leases", "create"), ("coordination.k8s.io", "leases", "get"), ("coordination.k8s.io", "leases", "update")],
            leaderElection.Order());
    }

    [Fact]
    public async Task Single_namespace_mode_grants_a_Role_in_the_watched_namespace_and_no_cluster_scope()
    {
        var m = await Helm.TemplateAsync(valuesFiles: ["single-namespace-values.yaml"]);
        Assert.Empty(m.OfKind("ClusterRole"));
        Assert.Empty(m.OfKind("ClusterRoleBinding"));
        var watched = m.OfKind("Role").Single(r => Namespace(r) == "team-a");
        var leader = m.OfKind("Role").Single(r => Namespace(r) == "tokengate-system");
        AssertOperatorGrants(Grants([watched]), Grants([leader]));
        var binding = m.OfKind("RoleBinding").Single(b => Namespace(b) == "team-a");
        Assert.Equal(("Role", Name(watched)), (binding["roleRef"]!["kind"]!.GetValue<string>(), binding["roleRef"]!["name"]!.GetValue<string>()));
        Assert.Equal("tokengate-system", binding["subjects"]![0]!["namespace"]!.GetValue<string>());

        var c = Container(m.Get("Deployment", "tokengate-operator"));
        Assert.Equal(["--source", "kubernetes", "--namespace", "team-a"], Strings(c["args"]));
        // The Lease stays in the release namespace, where the leader-election Role is.
        Assert.Equal("metadata.namespace", Env(c)["TokenGate__Kubernetes__LeaseNamespace"]["valueFrom"]!["fieldRef"]!["fieldPath"]!.GetValue<string>());

        Assert.DoesNotContain(m.Objects, o => Name(o).Contains("portal", StringComparison.Ordinal));
        Assert.Empty(m.OfKind("HorizontalPodAutoscaler"));
        Assert.Equal(3, m.Get("Deployment", "tokengate-proxy")["spec"]!["replicas"]!.GetValue<int>());
        var np = m.Get("NetworkPolicy", "tokengate-proxy");
        var publicRule = np["spec"]!["ingress"]!.AsArray().Single(r => r!["ports"]![0]!["port"]!.GetValue<int>() == 8080)!;
        Assert.Equal("team-a", publicRule["from"]![0]!["namespaceSelector"]!["matchLabels"]!["kubernetes.io/metadata.name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Datastores_and_pepper_come_from_existing_Secrets_and_each_process_gets_only_what_it_uses()
    {
        var m = await Helm.TemplateAsync(valuesFiles: ["external-redis-values.yaml"]);
        Assert.Empty(m.OfKind("Secret"));
        var op = Env(Container(m.Get("Deployment", "tokengate-operator")));
        var proxy = Env(Container(m.Get("Deployment", "tokengate-proxy")));
        var portal = Env(Container(m.Get("Deployment", "tokengate-portal")));
        static (string, string) Ref(JsonObject e) => (e["valueFrom"]!["secretKeyRef"]!["name"]!.GetValue<string>(), e["valueFrom"]!["secretKeyRef"]!["key"]!.GetValue<string>());

        Assert.Equal(("platform-postgres", "tokengate"), Ref(op["ConnectionStrings__Postgres"]));
        Assert.Equal(("platform-postgres", "tokengate"), Ref(portal["ConnectionStrings__Postgres"]));
        Assert.Equal(("platform-redis", "url"), Ref(op["ConnectionStrings__Redis"]));
        Assert.Equal(("platform-redis", "url"), Ref(proxy["ConnectionStrings__Redis"]));
        Assert.False(proxy.ContainsKey("ConnectionStrings__Postgres"), "the proxy never reaches PostgreSQL");
        Assert.False(portal.ContainsKey("TokenGate__PepperFile"), "the portal does not hash keys");
        foreach (var env in new[] { op, proxy })
        {
            Assert.Equal("tg-prod:", env["TokenGate__Redis__KeyPrefix"]["value"]!.GetValue<string>());
        }
        Assert.Equal("https://llm.example.com", op["TokenGate__PublicBaseUrl"]["value"]!.GetValue<string>());

        // The pepper file the operator and the proxy read is the item of the platform's Secret.
        foreach (var name in new[] { "tokengate-operator", "tokengate-proxy" })
        {
            var d = m.Get("Deployment", name);
            var c = Container(d);
            var pepperFile = Env(c)["TokenGate__PepperFile"]["value"]!.GetValue<string>();
            var mount = c["volumeMounts"]!.AsArray().Single(v => pepperFile.StartsWith(v!["mountPath"]!.GetValue<string>() + "/", StringComparison.Ordinal))!;
            var volume = PodSpec(d)["volumes"]!.AsArray().Single(v => v!["name"]!.GetValue<string>() == mount["name"]!.GetValue<string>())!;
            Assert.Equal("tokengate-pepper", volume["secret"]!["secretName"]!.GetValue<string>());
            var item = Assert.Single(volume["secret"]!["items"]!.AsArray())!;
            Assert.Equal(("value", Path.GetFileName(pepperFile)), (item["key"]!.GetValue<string>(), item["path"]!.GetValue<string>()));
            Assert.Equal("platform-credential-keys", CredentialKeysVolume(d)["secret"]!["secretName"]!.GetValue<string>());
            Assert.Equal("registry.example.com/platform/" + name["tokengate-".Length..] + ":0.1.0", c["image"]!.GetValue<string>());
            Assert.Equal("registry-credentials", PodSpec(d)["imagePullSecrets"]![0]!["name"]!.GetValue<string>());
        }
    }

    /// <summary>The Secret volume behind TokenGate__Credentials__KeysDirectory, mounted whole (no items) at that folder.</summary>
    private static JsonObject CredentialKeysVolume(JsonObject deployment)
    {
        var c = Container(deployment);
        var folder = Env(c)["TokenGate__Credentials__KeysDirectory"]["value"]!.GetValue<string>();
        var mount = c["volumeMounts"]!.AsArray().Single(v => v!["mountPath"]!.GetValue<string>() == folder)!;
        Assert.True(mount["readOnly"]!.GetValue<bool>());
        var volume = PodSpec(deployment)["volumes"]!.AsArray().Single(v => v!["name"]!.GetValue<string>() == mount["name"]!.GetValue<string>())!.AsObject();
        Assert.Null(volume["secret"]!["items"]); // every key id and "active": a rotation only edits the Secret
        return volume;
    }

    [Fact]
    public async Task A_generated_credential_key_is_random_kept_and_mounted_in_the_operator_and_the_proxy_only()
    {
        var m = await Helm.TemplateAsync();
        var first = m.Get("Secret", "tokengate-credential-keys");
        var second = (await Helm.TemplateAsync()).Get("Secret", "tokengate-credential-keys");
        Assert.Equal("keep", first["metadata"]!["annotations"]!["helm.sh/resource-policy"]!.GetValue<string>());
        string Item(JsonObject s, string key) => Encoding.ASCII.GetString(Convert.FromBase64String(s["data"]![key]!.GetValue<string>()));
        // The item is what the processes read: 32 random bytes in base64 (AES-256), and "active" names it.
        Assert.Equal(32, Convert.FromBase64String(Item(first, "k1")).Length);
        Assert.Equal("k1", Item(first, "active"));
        Assert.NotEqual(Item(first, "k1"), Item(second, "k1"));
        var template = await File.ReadAllTextAsync(Path.Combine(Helm.ChartDirectory, "templates", "credential-keys-secret.yaml"));
        Assert.Contains("lookup \"v1\" \"Secret\" .Release.Namespace $name", template, StringComparison.Ordinal);

        foreach (var name in new[] { "tokengate-operator", "tokengate-proxy" })
        {
            Assert.Equal("tokengate-credential-keys", CredentialKeysVolume(m.Get("Deployment", name))["secret"]!["secretName"]!.GetValue<string>());
        }
        var portal = m.Get("Deployment", "tokengate-portal");
        Assert.False(Env(Container(portal)).ContainsKey("TokenGate__Credentials__KeysDirectory"), "the portal never sees upstream credentials");
        Assert.DoesNotContain(PodSpec(portal)["volumes"]!.AsArray(), v => v!["secret"]?["secretName"]?.GetValue<string>() == "tokengate-credential-keys");

        // An existing Secret replaces the generated one.
        var existing = await Helm.TemplateAsync(set: ["credentialKeys.existingSecret=my-keys"]);
        Assert.Null(existing.Find("Secret", "tokengate-credential-keys"));
        Assert.Equal("my-keys", CredentialKeysVolume(existing.Get("Deployment", "tokengate-proxy"))["secret"]!["secretName"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_generated_pepper_is_random_and_kept_on_uninstall()
    {
        var first = (await Helm.TemplateAsync()).Get("Secret", "tokengate-pepper");
        var second = (await Helm.TemplateAsync()).Get("Secret", "tokengate-pepper");
        Assert.Equal("keep", first["metadata"]!["annotations"]!["helm.sh/resource-policy"]!.GetValue<string>());
        var pepper = Convert.FromBase64String(first["data"]!["pepper"]!.GetValue<string>());
        Assert.True(pepper.Length >= 32, "at least 32 random characters");
        // helm template cannot look the live Secret up, so each render draws anew: proof it is random, not a constant.
        Assert.NotEqual(Encoding.ASCII.GetString(pepper), Encoding.ASCII.GetString(Convert.FromBase64String(second["data"]!["pepper"]!.GetValue<string>())));
        // The template reuses the live value on upgrade (lookup) instead of drawing a new one.
        var template = await File.ReadAllTextAsync(Path.Combine(Helm.ChartDirectory, "templates", "pepper-secret.yaml"));
        Assert.Contains("lookup \"v1\" \"Secret\" .Release.Namespace $name", template, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ingress_publishes_the_portal_over_TLS_and_invite_links_use_its_host()
    {
        var m = await Helm.TemplateAsync(valuesFiles: ["ingress-values.yaml"]);
        var ingress = m.Get("Ingress", "tokengate-portal");
        var rule = Assert.Single(ingress["spec"]!["rules"]!.AsArray())!;
        Assert.Equal("tokengate.example.com", rule["host"]!.GetValue<string>());
        var backend = rule["http"]!["paths"]![0]!["backend"]!["service"]!;
        Assert.Equal(("tokengate-portal", 8081), (backend["name"]!.GetValue<string>(), backend["port"]!["number"]!.GetValue<int>()));
        Assert.Equal("tokengate-portal-tls", ingress["spec"]!["tls"]![0]!["secretName"]!.GetValue<string>());
        Assert.Equal("nginx", ingress["spec"]!["ingressClassName"]!.GetValue<string>());
        var op = Env(Container(m.Get("Deployment", "tokengate-operator")));
        Assert.Equal("https://tokengate.example.com", op["TokenGate__PortalBaseUrl"]["value"]!.GetValue<string>());
        Assert.Equal(2, m.Get("Deployment", "tokengate-portal")["spec"]!["replicas"]!.GetValue<int>());
    }

    [Fact]
    public async Task The_proxy_admits_through_quota_leases_by_default_and_a_value_turns_them_off()
    {
        var byDefault = Env(Container((await Helm.TemplateAsync()).Get("Deployment", "tokengate-proxy")));
        Assert.Equal("true", byDefault["TokenGate__Leases__Enabled"]["value"]!.GetValue<string>());
        var off = Env(Container((await Helm.TemplateAsync(set: ["proxy.leases.enabled=false"])).Get("Deployment", "tokengate-proxy")));
        Assert.Equal("false", off["TokenGate__Leases__Enabled"]["value"]!.GetValue<string>());
        var (code, _, stderr) = await Helm.TryRunAsync("template", "tg", Helm.ChartDirectory, "--set-string", "proxy.leases.enabled=yes");
        Assert.NotEqual(0, code);
        Assert.Contains("enabled", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Autoscaling_and_disruption_budgets_target_the_right_pods()
    {
        var m = await Helm.TemplateAsync();
        var proxy = m.Get("Deployment", "tokengate-proxy");
        Assert.Null(proxy["spec"]!["replicas"]);
        var hpa = m.Get("HorizontalPodAutoscaler", "tokengate-proxy");
        Assert.Equal(("Deployment", "tokengate-proxy"), (hpa["spec"]!["scaleTargetRef"]!["kind"]!.GetValue<string>(), hpa["spec"]!["scaleTargetRef"]!["name"]!.GetValue<string>()));
        Assert.True(hpa["spec"]!["minReplicas"]!.GetValue<int>() >= 2);
        foreach (var component in new[] { "proxy", "operator" })
        {
            var pdb = m.Get("PodDisruptionBudget", "tokengate-" + component);
            Assert.Equal(1, pdb["spec"]!["minAvailable"]!.GetValue<int>());
            AssertSelects(pdb["spec"]!["selector"]!["matchLabels"]!.AsObject(), m.Get("Deployment", "tokengate-" + component));
        }
    }

    [Theory]
    [InlineData(null)]
    [MemberData(nameof(ValuesFiles))]
    public async Task NetworkPolicies_select_each_pod_and_open_exactly_its_container_ports(string? valuesFile)
    {
        var m = await Helm.TemplateAsync(valuesFiles: valuesFile is null ? [] : [valuesFile]);
        foreach (var d in m.OfKind("Deployment"))
        {
            var labels = d["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();
            var policy = Assert.Single(m.OfKind("NetworkPolicy"), p => p["spec"]!["podSelector"]!["matchLabels"]!.AsObject().All(l => labels[l.Key]?.GetValue<string>() == l.Value!.GetValue<string>()));
            Assert.Equal(["Ingress"], Strings(policy["spec"]!["policyTypes"]));
            var open = policy["spec"]!["ingress"]!.AsArray().SelectMany(r => r!["ports"]!.AsArray()).Select(p => p!["port"]!.GetValue<int>()).Order();
            Assert.Equal(Container(d)["ports"]!.AsArray().Select(p => p!["containerPort"]!.GetValue<int>()).Order(), open);
        }
        if (valuesFile == "monitoring-values.yaml")
        {
            foreach (var p in m.OfKind("NetworkPolicy"))
            {
                var managementRule = p["spec"]!["ingress"]!.AsArray().Last()!;
                Assert.Equal("monitoring", managementRule["from"]![0]!["namespaceSelector"]!["matchLabels"]!["kubernetes.io/metadata.name"]!.GetValue<string>());
            }
        }
    }

    [Fact]
    public async Task Monitoring_objects_carry_the_shipped_rules_and_dashboard()
    {
        var m = await Helm.TemplateAsync(valuesFiles: ["monitoring-values.yaml"]);
        var rules = Assert.Single(m.OfKind("PrometheusRule"));
        var file = Manifests.Parse(await File.ReadAllTextAsync(Path.Combine(Helm.ChartDirectory, "files", "tokengate-rules.yaml"))).Objects.Single();
        Assert.True(JsonNode.DeepEquals(file["groups"], rules["spec"]!["groups"]), "PrometheusRule spec.groups equals files/tokengate-rules.yaml");
        Assert.NotEmpty(rules["spec"]!["groups"]!.AsArray());

        var dashboard = Assert.Single(m.OfKind("ConfigMap"));
        Assert.Equal("1", dashboard["metadata"]!["labels"]!["grafana_dashboard"]!.GetValue<string>());
        var json = JsonNode.Parse(dashboard["data"]!["tokengate-dashboard.json"]!.GetValue<string>())!;
        var shipped = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(Helm.ChartDirectory, "files", "tokengate-dashboard.json")))!;
        Assert.True(JsonNode.DeepEquals(shipped, json));
        Assert.False(string.IsNullOrEmpty(json["title"]?.GetValue<string>()));

        // Off by default: the default install must not need the Prometheus Operator's CRDs.
        var defaults = await Helm.TemplateAsync();
        Assert.Empty(defaults.OfKind("ServiceMonitor").Concat(defaults.OfKind("PrometheusRule")).Concat(defaults.OfKind("ConfigMap")));
    }

    [Fact]
    public async Task Notes_tell_how_to_get_the_first_key()
    {
        // helm template leaves NOTES.txt out and helm install needs a cluster: render it through `tpl` in a copy of
        // the chart, with the same values and helpers.
        var copy = Path.Combine(Path.GetTempPath(), "tg-notes-" + Guid.NewGuid().ToString("N")[..8], "tokengate");
        CopyDirectory(Helm.ChartDirectory, copy);
        File.Move(Path.Combine(copy, "templates", "NOTES.txt"), Path.Combine(copy, "notes-source.txt"));
        await File.WriteAllTextAsync(Path.Combine(copy, "templates", "notes-preview.yaml"), """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: notes-preview}
            data:
              notes: {{ tpl (.Files.Get "notes-source.txt") . | quote }}
            """);
        try
        {
            var rendered = Manifests.Parse(await Helm.RunAsync("template", "tokengate", copy, "--namespace", "tokengate-system", "--show-only", "templates/notes-preview.yaml"));
            var notes = rendered.Get("ConfigMap", "notes-preview")["data"]!["notes"]!.GetValue<string>();
            Assert.Contains("kubectl get secret alice-laptop-apikey -o jsonpath='{.data.OPENAI_API_KEY}'", notes, StringComparison.Ordinal);
            Assert.Contains("kubectl -n tokengate-system port-forward svc/tokengate-proxy 8080:8080", notes, StringComparison.Ordinal);
            Assert.Contains("/v1/models", notes, StringComparison.Ordinal);
            Assert.Contains("rollout status deploy/tokengate-operator", notes, StringComparison.Ordinal);
            Assert.Contains("Secret tokengate-pepper", notes, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(copy)!, recursive: true);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to, StringComparison.Ordinal));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Every_namespaced_object_names_the_release_namespace_and_components_have_distinct_accounts()
    {
        var m = await Helm.TemplateAsync(ns: "llm-gateway", release: "acme");
        var clusterScoped = new HashSet<string>(["ClusterRole", "ClusterRoleBinding"], StringComparer.Ordinal);
        foreach (var o in m.Objects.Where(o => !clusterScoped.Contains(Kind(o))))
        {
            Assert.Equal("llm-gateway", Namespace(o));
            Assert.StartsWith("acme-tokengate-", Name(o), StringComparison.Ordinal);
        }
        Assert.Equal(Components.Length, m.OfKind("Deployment").Select(d => PodSpec(d)["serviceAccountName"]!.GetValue<string>()).Distinct().Count());
    }

    private static void AssertSelects(JsonObject matchLabels, JsonNode deployment)
    {
        var labels = deployment["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();
        Assert.NotEmpty(matchLabels);
        Assert.All(matchLabels, l => Assert.Equal(l.Value!.GetValue<string>(), labels[l.Key]?.GetValue<string>()));
    }
}
