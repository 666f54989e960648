using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using static Gateway.Deploy.Tests.Manifests;

namespace Gateway.Deploy.Tests.Publish;

/// <summary>What a pod would get from the cluster, given locally: Secret values, downward-API fields, and so on.</summary>
public sealed record PodInputs
{
    /// <summary>The published output, standing in for the image's working directory (the Dockerfile copies it there).</summary>
    public required string AppDirectory { get; init; }
    /// <summary>Where the emulated volumes are created.</summary>
    public required string WorkDirectory { get; init; }
    /// <summary>Values of Secret keys, by (Secret name, key): for secretKeyRef env and Secret volumes.</summary>
    public Dictionary<(string Secret, string Key), string> Secrets { get; init; } = [];
    /// <summary>Downward-API values by fieldPath (metadata.name, metadata.namespace).</summary>
    public Dictionary<string, string> Fields { get; init; } = [];
    /// <summary>Env values the test replaces (each must exist in the Deployment), e.g. the Redis key prefix.</summary>
    public Dictionary<string, string> Overrides { get; init; } = [];
    /// <summary>Env the cluster injects outside the Deployment, e.g. KUBECONFIG standing in for the service-account mount.</summary>
    public Dictionary<string, string> Injected { get; init; } = [];
}

/// <summary>
/// Starts a published process exactly as a rendered Deployment's container would run: its command, args, env
/// (Secret and downward-API references resolved from <see cref="PodInputs"/>), working directory and volumes,
/// as the pod's numeric user with no capabilities and no-new-privs; container ports become free loopback ports.
/// </summary>
public sealed partial class PodProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private PodProcess(Process process, Dictionary<int, int> ports, string[] argv, JsonObject container)
    {
        _process = process;
        Ports = ports;
        Argv = argv;
        Container = container;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>Container port → the loopback port the process really listens on.</summary>
    public Dictionary<int, int> Ports { get; }
    public string[] Argv { get; }
    public JsonObject Container { get; }
    public int ProcessId => _process.Id;
    public bool HasExited => _process.HasExited;

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_log) _log.AppendLine(line);
    }

    public Uri Url(int containerPort, string path) => new($"http://127.0.0.1:{Ports[containerPort]}{path}");

    public static PodProcess Start(JsonNode deployment, PodInputs inputs)
    {
        var pod = PodSpec(deployment);
        var c = Container(deployment);
        var (uid, gid) = User(pod, c);

        // Paths the container sees → local folders: the image's working directory and each volume mount.
        var workingDir = c["workingDir"]!.GetValue<string>();
        var paths = new List<(string Container, string Host)> { (workingDir, inputs.AppDirectory) };
        var volumes = pod["volumes"]!.AsArray().ToDictionary(v => v!["name"]!.GetValue<string>(), v => v!, StringComparer.Ordinal);
        foreach (var mount in c["volumeMounts"] as JsonArray ?? [])
        {
            var name = mount!["name"]!.GetValue<string>();
            var host = Path.Combine(inputs.WorkDirectory, "volumes", name);
            Directory.CreateDirectory(host);
            var volume = volumes[name];
            if (volume["secret"] is { } secret)
            {
                var secretName = secret["secretName"]!.GetValue<string>();
                // Without items, the kubelet projects every key of the Secret as a file of that name.
                var items = secret["items"] is JsonArray listed
                    ? listed.Select(i => (Key: i!["key"]!.GetValue<string>(), Path: i["path"]!.GetValue<string>())).ToList()
                    : inputs.Secrets.Keys.Where(k => k.Secret == secretName).Select(k => (k.Key, Path: k.Key)).ToList();
                Assert.True(items.Count > 0, $"Secret volume {secretName}: no keys given in the pod inputs");
                foreach (var (key, path) in items)
                {
                    var file = Path.Combine(host, path);
                    File.WriteAllText(file, Lookup(inputs.Secrets, (secretName, key), "Secret volume"));
                    File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                }
                File.SetUnixFileMode(host, ReadOnlyDirectory);
            }
            else
            {
                Assert.NotNull(volume["emptyDir"]);
                Chown(host, uid, gid);
                File.SetUnixFileMode(host, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            paths.Add((mount["mountPath"]!.GetValue<string>(), host));
        }
        foreach (var dir in new[] { inputs.WorkDirectory, Path.Combine(inputs.WorkDirectory, "volumes") }) File.SetUnixFileMode(dir, ReadOnlyDirectory);

        var ports = new Dictionary<int, int>();
        foreach (var p in c["ports"]!.AsArray()) ports.TryAdd(p!["containerPort"]!.GetValue<int>(), FreePort());

        string Map(string value)
        {
            foreach (var (container, host) in paths)
            {
                if (value == container) return host;
                if (value.StartsWith(container + "/", StringComparison.Ordinal)) return host + value[container.Length..];
            }
            // Listen URLs: wildcard hosts become loopback, container ports the allocated ports.
            return ListenUrl().Replace(value, m => int.TryParse(m.Groups["port"].Value, out var port) && ports.TryGetValue(port, out var local)
                ? $"{m.Groups["scheme"].Value}127.0.0.1:{local}"
                : m.Value);
        }

        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            // What a container without a passwd entry gets: a PATH and an unwritable HOME.
            ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ["HOME"] = "/",
        };
        foreach (var e in c["env"] as JsonArray ?? [])
        {
            var name = e!["name"]!.GetValue<string>();
            if (e["value"] is { } v) env[name] = Map(v.GetValue<string>());
            else if (e["valueFrom"]?["secretKeyRef"] is { } sk) env[name] = Lookup(inputs.Secrets, (sk["name"]!.GetValue<string>(), sk["key"]!.GetValue<string>()), "secretKeyRef " + name);
            else if (e["valueFrom"]?["fieldRef"] is { } fr) env[name] = Lookup(inputs.Fields, fr["fieldPath"]!.GetValue<string>(), "fieldRef " + name);
            else Assert.Fail($"env {name}: unsupported source {e.ToJsonString()}");
        }
        foreach (var (name, value) in inputs.Overrides)
        {
            Assert.True(env.ContainsKey(name), $"the Deployment does not set {name}; the test may only replace what it sets");
            env[name] = value;
        }
        foreach (var (name, value) in inputs.Injected) env[name] = value;

        var argv = Strings(c["command"]).Concat(Strings(c["args"])).Select(Map).ToArray();
        var psi = new ProcessStartInfo { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Map(workingDir) };
        psi.Environment.Clear();
        foreach (var (k, v) in env) psi.Environment[k] = v;
        if (Environment.IsPrivilegedProcess)
        {
            // runAsUser/runAsGroup, no supplementary groups, allowPrivilegeEscalation: false, capabilities drop ALL.
            psi.FileName = "setpriv";
            foreach (var a in SetprivArgs(uid, gid)) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("--");
        }
        else
        {
            // Already unprivileged: run as this user.
            psi.FileName = argv[0];
            argv = argv[1..];
        }
        foreach (var a in argv) psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + psi.FileName);
        return new PodProcess(process, ports, [.. psi.ArgumentList], c);
    }

    public static string[] SetprivArgs(long uid, long gid) =>
        [$"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"];

    public static (long Uid, long Gid) User(JsonNode pod, JsonNode container)
    {
        var uid = container["securityContext"]?["runAsUser"]?.GetValue<long>() ?? pod["securityContext"]!["runAsUser"]!.GetValue<long>();
        var gid = container["securityContext"]?["runAsGroup"]?.GetValue<long>() ?? pod["securityContext"]!["runAsGroup"]!.GetValue<long>();
        return (uid, gid);
    }

    /// <summary>Polls the container's readiness probe (on its mapped port) until it answers 2xx.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        var probe = Container["readinessProbe"]!["httpGet"]!;
        var url = Url(probe["port"]!.GetValue<int>(), probe["path"]!.GetValue<string>());
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        var last = "";
        while (true)
        {
            Assert.False(_process.HasExited, $"{Argv.FirstOrDefault(a => a.EndsWith(".dll", StringComparison.Ordinal))} exited with {(_process.HasExited ? _process.ExitCode : 0)} before it was ready:\n{Log}");
            try
            {
                using var response = await http.GetAsync(url);
                if (response.IsSuccessStatusCode) return;
                last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            }
            catch (HttpRequestException e) { last = e.Message; }
            catch (TaskCanceledException) { last = "timed out"; }
            Assert.True(DateTime.UtcNow < deadline, $"readiness probe {url} never passed (last: {last}); log:\n{Log}");
            await Task.Delay(200);
        }
    }

    /// <summary>Fields of /proc/PID/status (Uid, Gid, NoNewPrivs, CapEff...).</summary>
    public Dictionary<string, string> Status() =>
        File.ReadAllLines($"/proc/{_process.Id}/status").Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1].Trim(), StringComparer.Ordinal);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        _process.Dispose();
    }

    private const UnixFileMode ReadOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead
        | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static TValue Lookup<TKey, TValue>(Dictionary<TKey, TValue> values, TKey key, string what) where TKey : notnull =>
        values.TryGetValue(key, out var v) ? v : throw new Xunit.Sdk.XunitException($"{what}: the test provides no value for {key}");

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void Chown(string path, long uid, long gid)
    {
        if (!Environment.IsPrivilegedProcess) return;
        using var p = Process.Start(new ProcessStartInfo("chown", [$"{uid}:{gid}", path]) { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    [GeneratedRegex(@"(?<scheme>https?://)(0\.0\.0\.0|\+|\*|\[::\]|localhost):(?<port>\d+)")]
    private static partial Regex ListenUrl();
}
