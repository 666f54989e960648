using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Deploy.Tests.Chart;
using Gateway.Testing;
using static Gateway.Deploy.Tests.Manifests;

namespace Gateway.Deploy.Tests.Images;

/// <summary>
/// No image builder runs here, so the Dockerfiles are checked against the chart: the image starts what the
/// Deployment's command names, from the folder it names, as the user it names, with nothing to run but dotnet.
/// </summary>
public sealed partial class DockerfileTests
{
    public static TheoryData<string, string> Components() => new()
    {
        { "operator", "operator/Gateway.Operator" },
        { "proxy", "proxy/Gateway.Proxy" },
        { "portal", "portal/Gateway.Portal" },
    };

    private sealed record Stage(string From, List<(string Instruction, string Args)> Lines);

    /// <summary>Stages of a Dockerfile: FROM lines and their instructions (continuations joined, comments dropped).</summary>
    private static List<Stage> Parse(string path)
    {
        var stages = new List<Stage>();
        var joined = File.ReadAllText(path).Replace("\\\n", " ", StringComparison.Ordinal);
        foreach (var raw in joined.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var instruction = line[..space].ToUpperInvariant();
            var args = line[(space + 1)..].Trim();
            if (instruction == "FROM") stages.Add(new Stage(args, []));
            else stages[^1].Lines.Add((instruction, args));
        }
        return stages;
    }

    [Theory]
    [MemberData(nameof(Components))]
    public async Task The_image_runs_what_the_Deployment_runs(string component, string projectDir)
    {
        var stages = Parse(Path.Combine(RepoPaths.Root, projectDir, "Dockerfile"));
        Assert.Equal(2, stages.Count);
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.0", stages[0].From, StringComparison.Ordinal);
        Assert.Equal("mcr.microsoft.com/dotnet/aspnet:10.0", stages[1].From);
        var build = stages[0].Lines;
        var project = Path.GetFileName(projectDir);
        Assert.Contains(build, l => l.Instruction == "RUN" && l.Args.StartsWith($"dotnet publish {projectDir}/{project}.csproj -c Release -o /app", StringComparison.Ordinal));

        var final = stages[1].Lines;
        // No shell at run time: the final stage runs nothing, it only copies the published output.
        Assert.DoesNotContain(final, l => l.Instruction == "RUN");
        Assert.Contains(final, l => l.Instruction == "COPY" && l.Args.Contains("--from=build", StringComparison.Ordinal) && l.Args.EndsWith("/app/ /app/", StringComparison.Ordinal));
        var labels = string.Join(' ', final.Where(l => l.Instruction == "LABEL").Select(l => l.Args));
        foreach (var key in new[] { "title", "description", "version", "revision", "source" })
        {
            Assert.Contains($"org.opencontainers.image.{key}=", labels, StringComparison.Ordinal);
        }

        var m = await Helm.TemplateAsync();
        var d = m.Get("Deployment", "tokengate-" + component);
        var c = Container(d);
        var entrypoint = JsonSerializer.Deserialize<string[]>(final.Single(l => l.Instruction == "ENTRYPOINT").Args)!;
        Assert.Equal(Strings(c["command"]), entrypoint);
        Assert.Equal(c["workingDir"]!.GetValue<string>(), final.Single(l => l.Instruction == "WORKDIR").Args);
        var psc = PodSpec(d)["securityContext"]!;
        Assert.Equal($"{psc["runAsUser"]}:{psc["runAsGroup"]}", final.Single(l => l.Instruction == "USER").Args);
        // The base image's default listener (:8080) is switched off: the process listens where the chart says.
        Assert.Matches(EmptyHttpPorts(), string.Join('\n', final.Where(l => l.Instruction == "ENV").Select(l => l.Args)));
    }

    [Fact]
    public async Task The_build_context_leaves_out_build_outputs_and_local_state()
    {
        var ignored = (await File.ReadAllLinesAsync(Path.Combine(RepoPaths.Root, ".dockerignore"))).Select(l => l.Trim()).ToHashSet(StringComparer.Ordinal);
        foreach (var pattern in new[] { "**/bin/", "**/obj/", ".git/", ".data/", ".tools/" })
        {
            Assert.Contains(pattern, ignored);
        }
        Assert.DoesNotContain("config/", ignored);
    }

    [GeneratedRegex(@"(^|\s)ASPNETCORE_HTTP_PORTS=(\s|$)")]
    private static partial Regex EmptyHttpPorts();
}
