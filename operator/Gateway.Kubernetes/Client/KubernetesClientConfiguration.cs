using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Gateway.Kubernetes.Client;

/// <summary>Supplies the bearer token for each request (static, or re-read from a rotating file).</summary>
public interface ITokenSource
{
    ValueTask<string?> GetTokenAsync(CancellationToken cancellationToken);
}

/// <summary>A fixed token (from a kubeconfig).</summary>
public sealed class StaticTokenSource(string token) : ITokenSource
{
    public ValueTask<string?> GetTokenAsync(CancellationToken cancellationToken) => ValueTask.FromResult<string?>(token);
}

/// <summary>
/// A token read from a file that the kubelet rotates (projected service-account token). Re-read when the
/// file's modification time changes, and at least every <see cref="MaxAge"/> regardless, as client-go does.
/// </summary>
public sealed class FileTokenSource(string path, TimeProvider? timeProvider = null) : ITokenSource
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;
    private readonly Lock _lock = new();
    private string? _token;
    private DateTime _mtime;
    private DateTimeOffset _readAt;

    public string Path { get; } = path;

    public TimeSpan MaxAge { get; init; } = TimeSpan.FromMinutes(1);

    public async ValueTask<string?> GetTokenAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var mtime = File.GetLastWriteTimeUtc(Path);
        lock (_lock)
        {
            if (_token is not null && mtime == _mtime && now - _readAt < MaxAge) return _token;
        }
        var token = (await File.ReadAllTextAsync(Path, cancellationToken)).Trim();
        lock (_lock)
        {
            _token = token;
            _mtime = mtime;
            _readAt = now;
        }
        return token;
    }
}

/// <summary>How to reach and authenticate to an API server.</summary>
public sealed class KubernetesClientConfiguration
{
    public const string ServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount";

    public required Uri Server { get; init; }

    /// <summary>The namespace from the kubeconfig context or the service account; "default" otherwise.</summary>
    public string Namespace { get; init; } = "default";

    public ITokenSource? Token { get; init; }

    /// <summary>Basic auth (rare; kept for dev clusters that still use it).</summary>
    public string? Username { get; init; }
    public string? Password { get; init; }

    /// <summary>Roots to trust for the server certificate; when null the system store is used.</summary>
    public X509Certificate2Collection? CertificateAuthority { get; init; }

    public X509Certificate2? ClientCertificate { get; init; }

    /// <summary>Skip server certificate verification (dev clusters only).</summary>
    public bool InsecureSkipTlsVerify { get; init; }

    /// <summary>Overrides the name the server certificate is checked against.</summary>
    public string? TlsServerName { get; init; }

    /// <summary>Timeout for non-watch requests.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>True when running in a pod with a mounted service account.</summary>
    public static bool IsInCluster() =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST"))
        && File.Exists(System.IO.Path.Combine(ServiceAccountDirectory, "token"));

    /// <summary>Config from the pod's service account (token re-read when rotated, cluster CA, namespace).</summary>
    public static KubernetesClientConfiguration InCluster(string serviceAccountDirectory = ServiceAccountDirectory)
    {
        var host = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST");
        var port = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port))
        {
            throw new InvalidOperationException("Not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set.");
        }
        // IPv6 service hosts need brackets in a URI.
        var hostPart = host.Contains(':', StringComparison.Ordinal) ? "[" + host + "]" : host;
        var caPath = System.IO.Path.Combine(serviceAccountDirectory, "ca.crt");
        var nsPath = System.IO.Path.Combine(serviceAccountDirectory, "namespace");
        X509Certificate2Collection? ca = null;
        if (File.Exists(caPath))
        {
            ca = [];
            ca.ImportFromPemFile(caPath);
        }
        return new KubernetesClientConfiguration
        {
            Server = new Uri($"https://{hostPart}:{port}/"),
            Token = new FileTokenSource(System.IO.Path.Combine(serviceAccountDirectory, "token")),
            CertificateAuthority = ca,
            Namespace = File.Exists(nsPath) ? File.ReadAllText(nsPath).Trim() : "default",
        };
    }

    /// <summary>
    /// Resolves the configuration the way controller-runtime does: an explicit kubeconfig path, then
    /// the KUBECONFIG variable, then the in-cluster service account, then ~/.kube/config.
    /// </summary>
    public static KubernetesClientConfiguration Load(string? kubeconfigPath = null, string? context = null)
    {
        if (!string.IsNullOrEmpty(kubeconfigPath)) return KubeConfigLoader.LoadFile(kubeconfigPath, context);
        var env = Environment.GetEnvironmentVariable("KUBECONFIG");
        if (!string.IsNullOrEmpty(env))
        {
            // KUBECONFIG may list several files; the first existing one wins for our purposes.
            var first = env.Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(File.Exists);
            if (first is not null) return KubeConfigLoader.LoadFile(first, context);
        }
        if (IsInCluster()) return InCluster();
        var home = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".kube", "config");
        if (File.Exists(home)) return KubeConfigLoader.LoadFile(home, context);
        throw new InvalidOperationException("No Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, run in a cluster or create ~/.kube/config.");
    }

    /// <summary>Builds the HTTP handler: TLS trust, client certificate, no proxy surprises, pooled connections.</summary>
    public SocketsHttpHandler CreateHandler()
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            EnableMultipleHttp2Connections = true,
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(15),
        };
        if (Server.Scheme == Uri.UriSchemeHttps)
        {
            var ssl = new SslClientAuthenticationOptions();
            if (!string.IsNullOrEmpty(TlsServerName)) ssl.TargetHost = TlsServerName;
            if (ClientCertificate is not null) ssl.ClientCertificates = [ClientCertificate];
            if (InsecureSkipTlsVerify)
            {
                ssl.RemoteCertificateValidationCallback = (_, _, _, _) => true;
            }
            else if (CertificateAuthority is { Count: > 0 } roots)
            {
                ssl.RemoteCertificateValidationCallback = (_, cert, presented, errors) => ValidateAgainstRoots(cert, presented, errors, roots);
            }
            handler.SslOptions = ssl;
        }
        return handler;
    }

    internal static bool ValidateAgainstRoots(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        if (certificate is null) return false;
        // The host name must still match; only the chain is checked against the kubeconfig's CA.
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // Intermediates the server sent may be needed to reach the kubeconfig's root.
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements) chain.ChainPolicy.ExtraStore.Add(element.Certificate);
        }
        using var cert2 = new X509Certificate2(certificate);
        return chain.Build(cert2);
    }
}
