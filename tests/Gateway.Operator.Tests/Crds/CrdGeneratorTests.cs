using System.ComponentModel;
using Gateway.Operator.Crds;
using YamlDotNet.RepresentationModel;

namespace Gateway.Operator.Tests.Crds;

public sealed class CrdGeneratorTests
{
    private static readonly string s_repoRoot = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Gateway.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("Gateway.sln not found above " + AppContext.BaseDirectory);
    }

    private static readonly Dictionary<string, string> s_generated = CrdGenerator.GenerateAll().ToDictionary(p => p.Key, p => p.Value);

    public static TheoryData<string> FileNames => new(s_generated.Keys);

    private static YamlMappingNode Load(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return (YamlMappingNode)stream.Documents.Single().RootNode;
    }

    private static YamlMappingNode Crd(string plural) => Load(s_generated[$"tokengate.io_{plural}.yaml"]);

    private static YamlNode At(YamlNode node, params string[] path)
    {
        foreach (var p in path)
        {
            node = p switch
            {
                "[0]" => ((YamlSequenceNode)node).Children[0],
                _ => ((YamlMappingNode)node).Children[new YamlScalarNode(p)],
            };
        }
        return node;
    }

    private static string Scalar(YamlNode node, params string[] path) => ((YamlScalarNode)At(node, path)).Value!;

    private static YamlMappingNode Schema(string plural) => (YamlMappingNode)At(Crd(plural), "spec", "versions", "[0]", "schema", "openAPIV3Schema");

    /// <summary>The schema of a field; "[]" steps into list items.</summary>
    private static YamlMappingNode Field(string plural, string dottedPath)
    {
        YamlNode node = Schema(plural);
        foreach (var part in dottedPath.Split('.'))
        {
            node = part == "[]" ? At(node, "items") : At(node, "properties", part);
        }
        return (YamlMappingNode)node;
    }

    private static List<string> Strings(YamlNode node, params string[] path) =>
        ((YamlSequenceNode)At(node, path)).Children.Cast<YamlScalarNode>().Select(s => s.Value!).ToList();

    [Theory]
    [MemberData(nameof(FileNames))]
    public void Committed_crds_match_the_generator_output(string fileName)
    {
        foreach (var dir in new[] { "config/crd", "charts/tokengate/crds" })
        {
            var path = Path.Combine(s_repoRoot, dir, fileName);
            Assert.True(File.Exists(path), $"{dir}/{fileName} is missing: run `make crds`.");
            var committed = File.ReadAllText(path);
            Assert.True(committed == s_generated[fileName], $"{dir}/{fileName} differs from the generator output: run `make crds` and commit the result.");
        }
    }

    [Fact]
    public void Kustomization_lists_exactly_the_generated_files()
    {
        var k = Load(File.ReadAllText(Path.Combine(s_repoRoot, "config/crd/kustomization.yaml")));
        Assert.Equal(s_generated.Keys.Order(), Strings(k, "resources").Order());
        var chartFiles = Directory.GetFiles(Path.Combine(s_repoRoot, "charts/tokengate/crds"), "*.yaml").Select(Path.GetFileName);
        Assert.Equal(s_generated.Keys.Order(), chartFiles.Order());
    }

    [Fact]
    public void Writes_one_file_per_crd()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tg-crds-" + Guid.NewGuid().ToString("N"));
        try
        {
            Assert.Equal(0, CrdCommand.Run(dir));
            Assert.Equal(
                ["tokengate.io_apikeys.yaml", "tokengate.io_upstreamaccounts.yaml", "tokengate.io_userquotas.yaml"],
                Directory.GetFiles(dir).Select(Path.GetFileName).Order());
            Assert.Equal(s_generated["tokengate.io_apikeys.yaml"], File.ReadAllText(Path.Combine(dir, "tokengate.io_apikeys.yaml")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("apikeys", "ApiKey", "apikey", "ak")]
    [InlineData("userquotas", "UserQuota", "userquota", "uq")]
    [InlineData("upstreamaccounts", "UpstreamAccount", "upstreamaccount", "ua")]
    public void Declares_names_scope_version_and_status_subresource(string plural, string kind, string singular, string shortName)
    {
        var crd = Crd(plural);
        Assert.Equal("apiextensions.k8s.io/v1", Scalar(crd, "apiVersion"));
        Assert.Equal("CustomResourceDefinition", Scalar(crd, "kind"));
        Assert.Equal($"{plural}.tokengate.io", Scalar(crd, "metadata", "name"));
        Assert.Equal("tokengate.io", Scalar(crd, "spec", "group"));
        Assert.Equal("Namespaced", Scalar(crd, "spec", "scope"));
        Assert.Equal(kind, Scalar(crd, "spec", "names", "kind"));
        Assert.Equal(kind + "List", Scalar(crd, "spec", "names", "listKind"));
        Assert.Equal(plural, Scalar(crd, "spec", "names", "plural"));
        Assert.Equal(singular, Scalar(crd, "spec", "names", "singular"));
        Assert.Equal([shortName], Strings(crd, "spec", "names", "shortNames"));
        Assert.Equal(["tokengate"], Strings(crd, "spec", "names", "categories"));
        var version = At(crd, "spec", "versions", "[0]");
        Assert.Equal("v1alpha1", Scalar(version, "name"));
        Assert.Equal("true", Scalar(version, "served"));
        Assert.Equal("true", Scalar(version, "storage"));
        Assert.Empty(((YamlMappingNode)At(version, "subresources", "status")).Children);
    }

    [Theory]
    [InlineData("apikeys", "Owner=.spec.owner|Prefix=.status.keyPrefix|Ready=.status.conditions[?(@.type==\"Ready\")].status|Last Used=.status.lastUsedAt|Spend=.status.spend|Age=.metadata.creationTimestamp")]
    [InlineData("userquotas", "Email=.spec.user.email|Balance=.status.balance|Spent=.status.spentThisPeriod|Budget=.spec.budget.amount|Ready=.status.conditions[?(@.type==\"Ready\")].status|Age=.metadata.creationTimestamp")]
    [InlineData("upstreamaccounts", "Provider=.spec.provider|Models=.spec.models[*].name|Priority=.spec.priority|Healthy=.status.conditions[?(@.type==\"Healthy\")].status|Expires=.status.tokenExpiresAt|Cooldown=.status.cooldownUntil|Requests Today=.status.requestsToday|Ready=.status.conditions[?(@.type==\"Ready\")].status|Age=.metadata.creationTimestamp")]
    public void Has_the_printer_columns(string plural, string expected)
    {
        var columns = (YamlSequenceNode)At(Crd(plural), "spec", "versions", "[0]", "additionalPrinterColumns");
        var actual = string.Join("|", columns.Cast<YamlMappingNode>().Select(c => Scalar(c, "name") + "=" + Scalar(c, "jsonPath")));
        Assert.Equal(expected, actual);
        foreach (var c in columns.Cast<YamlMappingNode>())
        {
            Assert.Contains(Scalar(c, "type"), new[] { "string", "integer", "number", "boolean", "date" });
            Assert.False(string.IsNullOrWhiteSpace(Scalar(c, "description")));
        }
        Assert.Equal("date", Scalar(columns.Cast<YamlMappingNode>().Single(c => Scalar(c, "name") == "Age"), "type"));
    }

    [Theory]
    [MemberData(nameof(FileNames))]
    public void Schema_is_structural_and_documents_every_field(string fileName)
    {
        var crd = Load(s_generated[fileName]);
        var root = (YamlMappingNode)At(crd, "spec", "versions", "[0]", "schema", "openAPIV3Schema");
        Assert.DoesNotContain("x-kubernetes-preserve-unknown-fields", s_generated[fileName]);
        // metadata may only say it is an object: the API server owns its schema.
        var metadata = (YamlMappingNode)At(root, "properties", "metadata");
        Assert.Equal(["type"], metadata.Children.Keys.Cast<YamlScalarNode>().Select(k => k.Value));
        Assert.Equal(["spec"], Strings(root, "required"));
        var count = 0;
        Walk(root, "", isRoot: true);
        Assert.True(count > 20, $"only {count} schema nodes found");

        void Walk(YamlMappingNode schema, string path, bool isRoot = false)
        {
            count++;
            var type = schema.Children.TryGetValue(new YamlScalarNode("type"), out var t) ? ((YamlScalarNode)t).Value : null;
            Assert.True(type is "object" or "array" or "string" or "integer" or "number" or "boolean", $"{path}: every node needs a type, found '{type}'");
            if (!isRoot && path != ".metadata" && !path.EndsWith("[]", StringComparison.Ordinal) && !path.EndsWith("{}", StringComparison.Ordinal))
            {
                Assert.True(schema.Children.ContainsKey(new YamlScalarNode("description")), $"{path}: no description");
            }
            if (schema.Children.TryGetValue(new YamlScalarNode("properties"), out var props))
            {
                Assert.Equal("object", type);
                foreach (var (k, v) in ((YamlMappingNode)props).Children) Walk((YamlMappingNode)v, path + "." + ((YamlScalarNode)k).Value);
                if (schema.Children.TryGetValue(new YamlScalarNode("required"), out var req))
                {
                    foreach (var r in ((YamlSequenceNode)req).Cast<YamlScalarNode>())
                    {
                        Assert.True(((YamlMappingNode)props).Children.ContainsKey(r), $"{path}: required field {r.Value} is not a property");
                    }
                }
            }
            if (type == "array") Walk((YamlMappingNode)At(schema, "items"), path + "[]");
            if (schema.Children.TryGetValue(new YamlScalarNode("additionalProperties"), out var ap)) Walk((YamlMappingNode)ap, path + "{}");
            if (schema.Children.TryGetValue(new YamlScalarNode("x-kubernetes-list-map-keys"), out var mapKeys))
            {
                var items = (YamlMappingNode)At(schema, "items");
                foreach (var key in ((YamlSequenceNode)mapKeys).Cast<YamlScalarNode>())
                {
                    Assert.Contains(key.Value!, Strings(items, "required"));
                }
            }
        }
    }

    [Fact]
    public void UpstreamAccount_schema_has_required_fields_enums_bounds_patterns_and_rules()
    {
        Assert.Equal(["provider", "baseUrl", "credentials", "models"], Strings(Field("upstreamaccounts", "spec"), "required"));
        Assert.Equal(["openai", "anthropic", "azure-openai", "openai-compatible", "gemini-openai"], Strings(Field("upstreamaccounts", "spec.provider"), "enum"));
        Assert.Equal(@"^https?://\S+$", Scalar(Field("upstreamaccounts", "spec.baseUrl"), "pattern"));
        var models = Field("upstreamaccounts", "spec.models");
        Assert.Equal("1", Scalar(models, "minItems"));
        Assert.Equal("map", Scalar(models, "x-kubernetes-list-type"));
        Assert.Equal(["name"], Strings(models, "x-kubernetes-list-map-keys"));
        Assert.Equal("0", Scalar(Field("upstreamaccounts", "spec.priority"), "minimum"));
        Assert.Equal("1", Scalar(Field("upstreamaccounts", "spec.weight"), "minimum"));
        Assert.Equal("1", Scalar(Field("upstreamaccounts", "spec.weight"), "default"));
        Assert.Equal("false", Scalar(Field("upstreamaccounts", "spec.disabled"), "default"));
        Assert.Equal("1", Scalar(Field("upstreamaccounts", "spec.limits.maxConcurrent"), "minimum"));
        Assert.Equal("0", Scalar(Field("upstreamaccounts", "spec.models.[].price.input"), "minimum"));
        Assert.Equal("number", Scalar(Field("upstreamaccounts", "spec.models.[].price.output"), "type"));
        Assert.Equal("has(self.apiKeySecretRef) != has(self.oauth)", Scalar(Field("upstreamaccounts", "spec.credentials"), "x-kubernetes-validations", "[0]", "rule"));
        Assert.Contains("azure-openai", Scalar(Field("upstreamaccounts", "spec"), "x-kubernetes-validations", "[0]", "rule"));
        Assert.Equal(["name", "key"], Strings(Field("upstreamaccounts", "spec.credentials.apiKeySecretRef"), "required"));
        Assert.Equal("date-time", Scalar(Field("upstreamaccounts", "status.tokenExpiresAt"), "format"));
    }

    [Fact]
    public void UserQuota_schema_has_required_fields_enums_bounds_defaults_and_rules()
    {
        Assert.Equal(["user"], Strings(Field("userquotas", "spec"), "required"));
        Assert.Equal(["name", "email"], Strings(Field("userquotas", "spec.user"), "required"));
        var period = Field("userquotas", "spec.budget.period");
        Assert.Equal(["none", "daily", "weekly", "monthly"], Strings(period, "enum"));
        Assert.Equal("monthly", Scalar(period, "default"));
        Assert.Equal("UTC", Scalar(Field("userquotas", "spec.budget.timezone"), "default"));
        var discount = Field("userquotas", "spec.discountRate");
        Assert.Equal("0", Scalar(discount, "minimum"));
        Assert.Equal("true", Scalar(discount, "exclusiveMinimum"));
        Assert.Equal("1", Scalar(discount, "maximum"));
        var grants = Field("userquotas", "spec.grants");
        Assert.Equal(["id"], Strings(grants, "x-kubernetes-list-map-keys"));
        Assert.Equal("self.all(g, self.exists_one(h, h.id == g.id))", Scalar(grants, "x-kubernetes-validations", "[0]", "rule"));
        Assert.Equal(["id", "amount"], Strings(Field("userquotas", "spec.grants.[]"), "required"));
        Assert.Equal("0", Scalar(Field("userquotas", "spec.grants.[].amount"), "minimum"));
        Assert.Equal("1", Scalar(Field("userquotas", "spec.limits.requestsPerDay"), "minimum"));
        Assert.Equal("string", Scalar(Field("userquotas", "spec.upstreamSelector.matchLabels"), "additionalProperties", "type"));
        Assert.Equal(["In", "NotIn", "Exists", "DoesNotExist"], Strings(Field("userquotas", "spec.upstreamSelector.matchExpressions.[].operator"), "enum"));
        Assert.Equal("number", Scalar(Field("userquotas", "status.balance"), "type"));
    }

    [Fact]
    public void ApiKey_schema_has_required_owner_defaults_and_duration_patterns()
    {
        Assert.Equal(["owner"], Strings(Field("apikeys", "spec"), "required"));
        var grace = Field("apikeys", "spec.rotation.gracePeriod");
        Assert.Equal("24h", Scalar(grace, "default"));
        Assert.Equal(Gateway.Core.Resources.SchemaPatterns.Duration, Scalar(grace, "pattern"));
        Assert.Equal(Gateway.Core.Resources.SchemaPatterns.Duration, Scalar(Field("apikeys", "spec.rotation.interval"), "pattern"));
        Assert.Equal("false", Scalar(Field("apikeys", "spec.disabled"), "default"));
        Assert.Equal("date-time", Scalar(Field("apikeys", "spec.expiresAt"), "format"));
        Assert.Equal("1", Scalar(Field("apikeys", "spec.limits.tokenLimit"), "minimum"));
        Assert.Equal("0", Scalar(Field("apikeys", "spec.limits.spendLimit"), "minimum"));
        Assert.Equal("1", Scalar(Field("apikeys", "spec.limits.requestsPerMinute"), "minimum"));
        Assert.Equal("true", Scalar(Field("apikeys", "spec.discountRate"), "exclusiveMinimum"));
        var conditions = Field("apikeys", "status.conditions");
        Assert.Equal(["type"], Strings(conditions, "x-kubernetes-list-map-keys"));
        Assert.Equal(["True", "False", "Unknown"], Strings(conditions, "items", "properties", "status", "enum"));
    }

    [Theory]
    [MemberData(nameof(FileNames))]
    public void Defaults_satisfy_their_own_field_schemas(string fileName)
    {
        var root = (YamlMappingNode)At(Load(s_generated[fileName]), "spec", "versions", "[0]", "schema", "openAPIV3Schema");
        var defaults = 0;
        Walk(root);
        Assert.True(defaults > 0, "every resource has at least one defaulted field");

        void Walk(YamlMappingNode schema)
        {
            if (schema.Children.TryGetValue(new YamlScalarNode("default"), out var d))
            {
                defaults++;
                Assert.Empty(SchemaValidator.Validate(d, schema));
            }
            if (schema.Children.TryGetValue(new YamlScalarNode("properties"), out var props))
            {
                foreach (var v in ((YamlMappingNode)props).Children.Values) Walk((YamlMappingNode)v);
            }
            if (schema.Children.TryGetValue(new YamlScalarNode("items"), out var items)) Walk((YamlMappingNode)items);
        }
    }

    public static TheoryData<string> SampleFiles => new(["apikey-demo.yaml", "userquota-demo.yaml", "upstreamaccount-mock.yaml"]);

    [Theory]
    [MemberData(nameof(SampleFiles))]
    public void Samples_are_valid_against_the_schemas(string sample)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Path.Combine(s_repoRoot, "config/samples", sample))));
        var checkedAny = false;
        foreach (var doc in stream.Documents)
        {
            var obj = (YamlMappingNode)doc.RootNode;
            if (Scalar(obj, "apiVersion") != "tokengate.io/v1alpha1") continue;
            var plural = Scalar(obj, "kind").ToLowerInvariant() + "s";
            Assert.Empty(SchemaValidator.Validate(obj, Schema(plural)));
            checkedAny = true;
        }
        Assert.True(checkedAny);
    }

    [Theory]
    [InlineData("upstreamaccounts", "provider: openai\nbaseUrl: https://api.openai.com/v1\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: gpt-4o}]", null)]
    [InlineData("upstreamaccounts", "provider: bedrock\nbaseUrl: https://x\ncredentials: {}\nmodels: [{name: a}]", ".spec.provider: Unsupported value")]
    [InlineData("upstreamaccounts", "provider: openai\nbaseUrl: ftp://x\ncredentials: {}\nmodels: [{name: a}]", ".spec.baseUrl: should match")]
    [InlineData("upstreamaccounts", "provider: openai\nbaseUrl: https://x\ncredentials: {}\nmodels: []", ".spec.models: should have at least 1 items")]
    [InlineData("upstreamaccounts", "provider: openai\nbaseUrl: https://x\ncredentials: {}\nmodels: [{name: a}, {name: a}]", ".spec.models: Duplicate value")]
    [InlineData("upstreamaccounts", "provider: openai\nbaseUrl: https://x\ncredentials: {}\nmodels: [{name: a}]\nweight: 0", ".spec.weight: should be greater than or equal to 1")]
    [InlineData("upstreamaccounts", "provider: openai\ncredentials: {}\nmodels: [{name: a}]", ".spec.baseUrl: required")]
    [InlineData("userquotas", "user: {name: a, email: a@b.c}\ndiscountRate: 0", ".spec.discountRate: should be greater than 0")]
    [InlineData("userquotas", "user: {name: a, email: a@b.c}\ndiscountRate: 1.5", ".spec.discountRate: should be less than or equal to 1")]
    [InlineData("userquotas", "user: {name: a, email: a@b.c}\nbudget: {amount: 5, period: yearly}", ".spec.budget.period: Unsupported value")]
    [InlineData("userquotas", "user: {name: a, email: a@b.c}\ngrants: [{id: g1, amount: 1}, {id: g1, amount: 2}]", ".spec.grants: Duplicate value")]
    [InlineData("userquotas", "user: {name: a, email: a@b.c}\ngrants: [{id: g1}]", ".spec.grants[0].amount: required")]
    [InlineData("userquotas", "user: {name: a}", ".spec.user.email: required")]
    [InlineData("userquotas", "user: {name: a, email: not-an-email}", ".spec.user.email: should match")]
    [InlineData("userquotas", "user: {name: a, email: a@b.c}\nlimits: {requestsPerMinute: 0}", ".spec.limits.requestsPerMinute: should be greater than or equal to 1")]
    [InlineData("apikeys", "owner: demo\nrotation: {gracePeriod: 1h30m, interval: 720h}", null)]
    [InlineData("apikeys", "owner: demo\nrotation: {gracePeriod: 1 day}", ".spec.rotation.gracePeriod: should match")]
    [InlineData("apikeys", "description: no owner", ".spec.owner: required")]
    [InlineData("apikeys", "owner: Demo_User", ".spec.owner: should match")]
    [InlineData("apikeys", "owner: demo\nlimits: {tokenLimit: 0}", ".spec.limits.tokenLimit: should be greater than or equal to 1")]
    [InlineData("apikeys", "owner: demo\nownr: typo", ".spec.ownr: unknown field")]
    public void Schema_accepts_valid_and_rejects_invalid_specs(string plural, string specYaml, string? expectedError)
    {
        var yaml = "apiVersion: tokengate.io/v1alpha1\nkind: X\nmetadata: {name: x}\nspec:\n" + string.Join("\n", specYaml.Split('\n').Select(l => "  " + l));
        var errors = SchemaValidator.Validate(Load(yaml), Schema(plural));
        if (expectedError is null) Assert.Empty(errors);
        else Assert.Contains(errors, e => e.StartsWith(expectedError, StringComparison.Ordinal));
    }

    private sealed class Undocumented
    {
        [Description("Documented.")]
        public string? Good { get; set; }
        public string? Bad { get; set; }
    }

    [Fact]
    public void Refuses_to_generate_a_field_without_a_description()
    {
        var e = Assert.Throws<InvalidOperationException>(() => CrdGenerator.ObjectSchema(typeof(Undocumented), []));
        Assert.Contains("Undocumented.Bad", e.Message);
    }
}
