using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Gateway.Kubernetes.Client;

/// <summary>Reads a kubeconfig file (clusters, users, contexts) into a <see cref="KubernetesClientConfiguration"/>.</summary>
public static class KubeConfigLoader
{
    public static KubernetesClientConfiguration LoadFile(string path, string? context = null)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"kubeconfig '{full}' does not exist.", full);
        return LoadYaml(File.ReadAllText(full), Path.GetDirectoryName(full)!, context);
    }

    /// <summary>Parses kubeconfig YAML; relative file paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static KubernetesClientConfiguration LoadYaml(string yaml, string baseDirectory, string? context = null)
    {
        var deserializer = new DeserializerBuilder()
            .WithNamingConvention(HyphenatedNamingConvention.Instance)
            .IgnoreUnmatchedProperties()
            .Build();
        var doc = deserializer.Deserialize<KubeConfigDocument>(yaml) ?? new KubeConfigDocument();

        var contextName = context ?? doc.CurrentContext;
        if (string.IsNullOrEmpty(contextName)) throw new InvalidOperationException("The kubeconfig has no current-context and none was given.");
        var ctx = doc.Contexts?.FirstOrDefault(c => c.Name == contextName)?.Context
            ?? throw new InvalidOperationException($"Context '{contextName}' is not in the kubeconfig.");
        var cluster = doc.Clusters?.FirstOrDefault(c => c.Name == ctx.Cluster)?.Cluster
            ?? throw new InvalidOperationException($"Cluster '{ctx.Cluster}' of context '{contextName}' is not in the kubeconfig.");
        var user = string.IsNullOrEmpty(ctx.User) ? new KubeUser() : doc.Users?.FirstOrDefault(u => u.Name == ctx.User)?.User
            ?? throw new InvalidOperationException($"User '{ctx.User}' of context '{contextName}' is not in the kubeconfig.");
        if (string.IsNullOrEmpty(cluster.Server)) throw new InvalidOperationException($"Cluster '{ctx.Cluster}' has no server.");

        X509Certificate2Collection? ca = null;
        var caPem = ReadPem(cluster.CertificateAuthorityData, cluster.CertificateAuthority, baseDirectory);
        if (caPem is not null)
        {
            ca = [];
            ca.ImportFromPem(caPem);
        }

        X509Certificate2? clientCert = null;
        var certPem = ReadPem(user.ClientCertificateData, user.ClientCertificate, baseDirectory);
        var keyPem = ReadPem(user.ClientKeyData, user.ClientKey, baseDirectory);
        if (certPem is not null)
        {
            if (keyPem is null) throw new InvalidOperationException($"User '{ctx.User}' has a client certificate but no client key.");
            // CreateFromPem reads RSA, EC and PKCS#8 keys; the PKCS#12 round trip gives a key SslStream can use on every platform.
            using var ephemeral = X509Certificate2.CreateFromPem(certPem, keyPem);
            clientCert = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
        }

        ITokenSource? token = null;
        if (!string.IsNullOrEmpty(user.Token)) token = new StaticTokenSource(user.Token);
        else if (!string.IsNullOrEmpty(user.TokenFile)) token = new FileTokenSource(Resolve(user.TokenFile, baseDirectory));
        else if (user.Exec is { Command.Length: > 0 } exec) token = new ExecTokenSource(exec, baseDirectory);

        return new KubernetesClientConfiguration
        {
            Server = new Uri(cluster.Server.EndsWith('/') ? cluster.Server : cluster.Server + "/"),
            Namespace = string.IsNullOrEmpty(ctx.Namespace) ? "default" : ctx.Namespace,
            CertificateAuthority = ca,
            InsecureSkipTlsVerify = cluster.InsecureSkipTlsVerify,
            TlsServerName = cluster.TlsServerName,
            ClientCertificate = clientCert,
            Token = token,
            Username = user.Username,
            Password = user.Password,
        };
    }

    private static string? ReadPem(string? base64Data, string? file, string baseDirectory)
    {
        if (!string.IsNullOrEmpty(base64Data)) return Encoding.UTF8.GetString(Convert.FromBase64String(base64Data.Trim()));
        if (!string.IsNullOrEmpty(file)) return File.ReadAllText(Resolve(file, baseDirectory));
        return null;
    }

    private static string Resolve(string path, string baseDirectory)
    {
        if (path.StartsWith("~/", StringComparison.Ordinal))
        {
            path = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..]);
        }
        return Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(baseDirectory, path));
    }

    // YamlDotNet maps these with the hyphenated convention (certificate-authority-data, current-context, ...).
    internal sealed class KubeConfigDocument
    {
        public string? CurrentContext { get; set; }
        public List<NamedCluster>? Clusters { get; set; }
        public List<NamedUser>? Users { get; set; }
        public List<NamedContext>? Contexts { get; set; }
    }

    internal sealed class NamedCluster
    {
        public string? Name { get; set; }
        public KubeCluster? Cluster { get; set; }
    }

    internal sealed class KubeCluster
    {
        public string? Server { get; set; }
        public string? CertificateAuthority { get; set; }
        public string? CertificateAuthorityData { get; set; }
        public bool InsecureSkipTlsVerify { get; set; }
        public string? TlsServerName { get; set; }
    }

    internal sealed class NamedUser
    {
        public string? Name { get; set; }
        public KubeUser? User { get; set; }
    }

    internal sealed class KubeUser
    {
        public string? Token { get; set; }
        [YamlMember(Alias = "tokenFile", ApplyNamingConventions = false)]
        public string? TokenFile { get; set; }
        public string? ClientCertificate { get; set; }
        public string? ClientCertificateData { get; set; }
        public string? ClientKey { get; set; }
        public string? ClientKeyData { get; set; }
        public string? Username { get; set; }
        public string? Password { get; set; }
        public KubeExec? Exec { get; set; }
    }

    internal sealed class KubeExec
    {
        public string? Command { get; set; }
        public List<string>? Args { get; set; }
        public List<KubeExecEnv>? Env { get; set; }
        [YamlMember(Alias = "apiVersion", ApplyNamingConventions = false)]
        public string? ApiVersion { get; set; }
    }

    internal sealed class KubeExecEnv
    {
        public string? Name { get; set; }
        public string? Value { get; set; }
    }

    internal sealed class NamedContext
    {
        public string? Name { get; set; }
        public KubeContext? Context { get; set; }
    }

    internal sealed class KubeContext
    {
        public string? Cluster { get; set; }
        public string? User { get; set; }
        [YamlMember(Alias = "namespace", ApplyNamingConventions = false)]
        public string? Namespace { get; set; }
    }

    /// <summary>
    /// client.authentication.k8s.io exec credential plugin (e.g. cloud CLIs): runs the command and
    /// caches the returned token until shortly before its expirationTimestamp.
    /// </summary>
    private sealed class ExecTokenSource(KubeExec exec, string baseDirectory) : ITokenSource
    {
        private readonly SemaphoreSlim _gate = new(1, 1);
        private string? _token;
        private DateTimeOffset _expires;

        public async ValueTask<string?> GetTokenAsync(CancellationToken cancellationToken)
        {
            await _gate.WaitAsync(cancellationToken);
            try
            {
                if (_token is not null && DateTimeOffset.UtcNow < _expires) return _token;
                var psi = new ProcessStartInfo(exec.Command!)
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    UseShellExecute = false,
                    WorkingDirectory = baseDirectory,
                };
                foreach (var a in exec.Args ?? []) psi.ArgumentList.Add(a);
                foreach (var e in exec.Env ?? []) if (e.Name is not null) psi.Environment[e.Name] = e.Value ?? "";
                var apiVersion = exec.ApiVersion ?? "client.authentication.k8s.io/v1";
                psi.Environment["KUBERNETES_EXEC_INFO"] = $"{{\"apiVersion\":\"{apiVersion}\",\"kind\":\"ExecCredential\",\"spec\":{{\"interactive\":false}}}}";
                using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start exec credential plugin '{exec.Command}'.");
                var output = await process.StandardOutput.ReadToEndAsync(cancellationToken);
                await process.WaitForExitAsync(cancellationToken);
                if (process.ExitCode != 0) throw new InvalidOperationException($"Exec credential plugin '{exec.Command}' exited with {process.ExitCode}.");
                using var doc = JsonDocument.Parse(output);
                var status = doc.RootElement.GetProperty("status");
                _token = status.TryGetProperty("token", out var t) ? t.GetString() : null;
                _expires = status.TryGetProperty("expirationTimestamp", out var exp) && exp.GetString() is { } s
                    ? DateTimeOffset.Parse(s, System.Globalization.CultureInfo.InvariantCulture).AddSeconds(-30)
                    : DateTimeOffset.UtcNow.AddMinutes(5);
                return _token;
            }
            finally
            {
                _gate.Release();
            }
        }
    }
}
