using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;

namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>
/// A real kube-apiserver and etcd on loopback, as controller-runtime's envtest starts them: free ports, a
/// temporary directory for etcd's data and the PKI, the RBAC authorizer on, and an admin identity (a client
/// certificate in <c>system:masters</c>) for setup. No controller-manager runs: no garbage collection, no
/// namespace deletion, no default service-account tokens. Start one per test collection (several seconds).
/// </summary>
public sealed class RealApiServer : IAsyncDisposable
{
    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(90);
    private readonly string _dir;
    private Process? _etcd;
    private Process? _apiServer;
    private int _etcdClientPort;

    private RealApiServer(string dir, TestPki pki)
    {
        _dir = dir;
        Pki = pki;
    }

    public TestPki Pki { get; }
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>A kubeconfig for the admin (system:masters) identity.</summary>
    public string AdminKubeconfigPath => Path.Combine(_dir, "admin.kubeconfig");

    /// <summary>An admin client (everything allowed; for setup and inspection, like a cluster-admin's kubectl).</summary>
    public KubernetesClient Admin { get; private set; } = null!;

    /// <summary>The temporary directory the server's files live in.</summary>
    public string Directory => _dir;

    public static async Task<RealApiServer> StartAsync()
    {
        if (EnvtestAssets.Unavailable is { } why) throw new InvalidOperationException(why);
        // A free port can be taken by someone else between probing and binding: one more try on fresh ports.
        for (var attempt = 1; ; attempt++)
        {
            var dir = Path.Combine(Path.GetTempPath(), "tg-envtest-" + Guid.NewGuid().ToString("N")[..8]);
            System.IO.Directory.CreateDirectory(dir);
            var server = new RealApiServer(dir, TestPki.Create(Path.Combine(dir, "pki")));
            try
            {
                await server.StartProcessesAsync();
                return server;
            }
            catch (InvalidOperationException) when (attempt < 2)
            {
                await server.DisposeAsync();
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }
    }

    private async Task StartProcessesAsync()
    {
        var etcdClient = _etcdClientPort = FreePort();
        var etcdPeer = FreePort();
        var securePort = FreePort();
        var etcdData = Path.Combine(_dir, "etcd");
        _etcd = Start(Executable(EnvtestAssets.Etcd), "etcd.log",
            "--name", "envtest",
            "--data-dir", etcdData,
            "--listen-client-urls", $"http://127.0.0.1:{etcdClient}",
            "--advertise-client-urls", $"http://127.0.0.1:{etcdClient}",
            "--listen-peer-urls", $"http://127.0.0.1:{etcdPeer}",
            "--initial-advertise-peer-urls", $"http://127.0.0.1:{etcdPeer}",
            "--initial-cluster", $"envtest=http://127.0.0.1:{etcdPeer}",
            "--listen-metrics-urls", "",
            "--log-level", "warn");

        _apiServer = Start(Executable(EnvtestAssets.KubeApiServer), "kube-apiserver.log",
            $"--etcd-servers=http://127.0.0.1:{etcdClient}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            $"--secure-port={securePort}",
            $"--cert-dir={Path.Combine(_dir, "cert-dir")}",
            $"--tls-cert-file={Pki.ServingCertFile}",
            $"--tls-private-key-file={Pki.ServingKeyFile}",
            $"--client-ca-file={Pki.CaCertFile}",
            $"--service-account-key-file={Pki.ServiceAccountPublicKeyFile}",
            $"--service-account-signing-key-file={Pki.ServiceAccountPrivateKeyFile}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            // No controller-manager: nothing would create the default ServiceAccounts pods need.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--v=1");

        BaseAddress = new Uri($"https://127.0.0.1:{securePort}/");
        File.WriteAllText(AdminKubeconfigPath, Kubeconfig(BaseAddress, Pki.CaCertFile, $"""
                client-certificate: {Pki.AdminCertFile}
                client-key: {Pki.AdminKeyFile}
            """));
        // Through the kubeconfig, so the file kubectl uses is the one the tests' own client proved.
        var admin = KubeConfigLoader.LoadFile(AdminKubeconfigPath);
        Admin = new KubernetesClient(new KubernetesClientConfiguration
        {
            Server = admin.Server,
            CertificateAuthority = admin.CertificateAuthority,
            ClientCertificate = admin.ClientCertificate,
            RequestTimeout = TimeSpan.FromSeconds(30),
        });
        await WaitReadyAsync();
    }

    /// <summary>A kubeconfig for <paramref name="server"/> with the given user stanza (indented by 4).</summary>
    public static string Kubeconfig(Uri server, string caFile, string user, string ns = "default") => $"""
        apiVersion: v1
        kind: Config
        clusters:
        - name: envtest
          cluster:
            server: {server.ToString().TrimEnd('/')}
            certificate-authority: {caFile}
        users:
        - name: user
          user:
        {user}
        contexts:
        - name: envtest
          context:
            cluster: envtest
            user: user
            namespace: {ns}
        current-context: envtest
        """;

    private async Task WaitReadyAsync()
    {
        using var http = new HttpClient(Admin.Configuration.CreateHandler()) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var deadline = DateTime.UtcNow + StartDeadline;
        string last = "no answer";
        while (true)
        {
            foreach (var (name, p) in new[] { ("etcd", _etcd!), ("kube-apiserver", _apiServer!) })
            {
                if (p.HasExited) throw new InvalidOperationException($"{name} exited with {p.ExitCode} while starting:\n{Tail(name + ".log")}");
            }
            try
            {
                using var response = await http.GetAsync("readyz");
                if (response.StatusCode == HttpStatusCode.OK) return;
                last = $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}";
            }
            catch (HttpRequestException e) { last = e.Message; }
            catch (TaskCanceledException) { last = "timeout"; }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"kube-apiserver was not ready within {StartDeadline}: {last}\n{Tail("kube-apiserver.log")}");
            }
            await Task.Delay(250);
        }
    }

    /// <summary>The last lines of a process's log (for failure messages).</summary>
    public string Tail(string log, int lines = 30)
    {
        try
        {
            using var stream = new FileStream(Path.Combine(_dir, log), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return string.Join('\n', reader.ReadToEnd().Split('\n').TakeLast(lines));
        }
        catch (IOException e) { return e.Message; }
    }

    private Process Start(string file, string log, params string[] args)
    {
        // A test host that exits without disposing (crash, timeout) must not leave the servers running.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillQuietly();
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _dir,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}.");
        var writer = new StreamWriter(new FileStream(Path.Combine(_dir, log), FileMode.Create, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var gate = new Lock();
        void Write(string? line)
        {
            if (line is null) return;
            lock (gate)
            {
                try { writer.WriteLine(line); } catch (ObjectDisposedException) { }
            }
        }
        process.OutputDataReceived += (_, e) => Write(e.Data);
        process.ErrorDataReceived += (_, e) => Write(e.Data);
        process.Exited += (_, _) => { lock (gate) writer.Dispose(); };
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// The binary itself, or — when the assets folder was copied without execute bits — a private copy
    /// made executable.
    /// </summary>
    private string Executable(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full) || OperatingSystem.IsWindows()) return path; // a name to look up on PATH
        if ((File.GetUnixFileMode(full) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0) return full;
        var copy = Path.Combine(_dir, "bin", Path.GetFileName(full));
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        File.Copy(full, copy, overwrite: true);
        File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return copy;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// A token for a ServiceAccount from the TokenRequest API (what the kubelet mounts into a pod;
    /// what <c>kubectl create token</c> prints).
    /// </summary>
    public async Task<string> CreateTokenAsync(string ns, string serviceAccount, TimeSpan? lifetime = null)
    {
        var tokens = Admin.Resource<JsonObject>(new ResourceDefinition("", "v1", $"serviceaccounts/{serviceAccount}/token", "TokenRequest"));
        var answer = await tokens.CreateAsync(new JsonObject
        {
            ["apiVersion"] = "authentication.k8s.io/v1",
            ["kind"] = "TokenRequest",
            ["spec"] = new JsonObject { ["expirationSeconds"] = (long)(lifetime ?? TimeSpan.FromHours(2)).TotalSeconds },
        }, ns);
        return answer["status"]?["token"]?.GetValue<string>() ?? throw new InvalidOperationException("TokenRequest answered without a token.");
    }

    /// <summary>
    /// Compacts etcd's history up to its current revision (what the API server does every 5 minutes): list
    /// continue tokens and reads at older resourceVersions then get 410 Expired.
    /// </summary>
    public async Task CompactEtcdAsync()
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_etcdClientPort}/"), Timeout = TimeSpan.FromSeconds(30) };
        // etcd's JSON gateway: any range answers with the current revision in its header.
        using var range = await http.PostAsync("v3/kv/range", new StringContent("{\"key\":\"AA==\"}", Encoding.UTF8, "application/json"));
        range.EnsureSuccessStatusCode();
        var revision = JsonNode.Parse(await range.Content.ReadAsStringAsync())!["header"]!["revision"]!.ToString();
        using var compact = await http.PostAsync("v3/kv/compaction", new StringContent($"{{\"revision\":\"{revision}\",\"physical\":true}}", Encoding.UTF8, "application/json"));
        compact.EnsureSuccessStatusCode();
    }

    /// <summary>Writes a kubeconfig that authenticates with <paramref name="token"/>; returns its path.</summary>
    public string WriteTokenKubeconfig(string name, string token, string ns)
    {
        var path = Path.Combine(_dir, name + ".kubeconfig");
        File.WriteAllText(path, Kubeconfig(BaseAddress, Pki.CaCertFile, "    token: " + token, ns), Encoding.UTF8);
        return path;
    }

    private void KillQuietly()
    {
        foreach (var p in new[] { _apiServer, _etcd })
        {
            try { if (p is { HasExited: false }) p.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        foreach (var p in new[] { _apiServer, _etcd })
        {
            if (p is null) continue;
            try
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                await p.WaitForExitAsync(cts.Token);
            }
            catch (InvalidOperationException) { }
            catch (OperationCanceledException) { }
            p.Dispose();
        }
        try { System.IO.Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
