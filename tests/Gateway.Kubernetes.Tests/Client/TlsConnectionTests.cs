using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Gateway.Kubernetes.Client;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests.Client;

/// <summary>A kubeconfig with a CA, a client certificate and a token, used against the fake served over HTTPS.</summary>
public sealed class TlsConnectionTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tg-tls-").FullName;
    private readonly RSA _caKey = RSA.Create(2048);
    private X509Certificate2 _ca = null!;
    private FakeApiServer _server = null!;

    public async Task InitializeAsync()
    {
        var caReq = new CertificateRequest("CN=cluster-ca", _caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        _ca = caReq.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));

        using var serverKey = RSA.Create(2048);
        var serverReq = new CertificateRequest("CN=kube-apiserver", serverKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        serverReq.CertificateExtensions.Add(san.Build());
        serverReq.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var serverCert = serverReq.Create(_ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1), [9, 9, 9]).CopyWithPrivateKey(serverKey);
        var pfx = X509CertificateLoader.LoadPkcs12(serverCert.Export(X509ContentType.Pkcs12), null);

        _server = await FakeApiServer.StartAsync(s =>
        {
            s.Register(KubeTestContext.WidgetType);
            s.ServerCertificate = pfx;
        });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _ca.Dispose();
        _caKey.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private (string CertPem, string KeyPem) ClientCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=tokengate-operator, O=system:masters", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        var signer = X509SignatureGenerator.CreateForRSA(_caKey, RSASignaturePadding.Pkcs1);
        using var cert = req.Create(_ca.SubjectName, signer, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1), [7, 7]);
        return (cert.ExportCertificatePem(), key.ExportECPrivateKeyPem());
    }

    private string WriteKubeconfig(string clusterTls, bool withClientCert = true)
    {
        var (certPem, keyPem) = ClientCertificate();
        var user = withClientCert
            ? $"""
                    client-certificate-data: {B64(certPem)}
                    client-key-data: {B64(keyPem)}
                    token: operator-token
              """
            : """
                    token: operator-token
              """;
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N"));
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            current-context: test
            clusters:
            - name: test
              cluster:
                server: {_server.BaseAddress}
            {clusterTls}
            users:
            - name: op
              user:
            {user}
            contexts:
            - name: test
              context:
                cluster: test
                user: op
                namespace: default
            """);
        return path;
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    [Fact]
    public async Task Connects_with_the_kubeconfig_ca_client_certificate_and_token()
    {
        Assert.Equal("https", _server.BaseAddress.Scheme);
        var path = WriteKubeconfig($"    certificate-authority-data: {B64(_ca.ExportCertificatePem())}");
        using var client = new KubernetesClient(KubernetesClientConfiguration.Load(path));
        var widgets = client.Resource<Widget>(KubeTestContext.WidgetDefinition, KubeTestContext.Json);

        await widgets.CreateAsync(Widget.Named("tls"));
        Assert.Equal("red", (await widgets.GetAsync("default", "tls")).Spec.Color);

        Assert.Equal("Bearer operator-token", _server.LastAuthorization);
        Assert.Equal("HTTP/2", _server.LastProtocol);
        Assert.Contains("CN=tokengate-operator", _server.LastClientCertificateSubject, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rejects_a_server_not_signed_by_the_kubeconfig_ca()
    {
        using var otherKey = RSA.Create(2048);
        var otherReq = new CertificateRequest("CN=other-ca", otherKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        otherReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var otherCa = otherReq.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var path = WriteKubeconfig($"    certificate-authority-data: {B64(otherCa.ExportCertificatePem())}", withClientCert: false);
        using var client = new KubernetesClient(KubernetesClientConfiguration.Load(path));

        await Assert.ThrowsAsync<HttpRequestException>(() => client.Resource<Widget>(KubeTestContext.WidgetDefinition, KubeTestContext.Json).ListAsync("default"));
    }

    [Fact]
    public async Task Insecure_skip_tls_verify_connects_without_a_ca()
    {
        var path = WriteKubeconfig("    insecure-skip-tls-verify: true", withClientCert: false);
        using var client = new KubernetesClient(KubernetesClientConfiguration.Load(path));

        var list = await client.Resource<Widget>(KubeTestContext.WidgetDefinition, KubeTestContext.Json).ListAsync("default");
        Assert.Empty(list.Entries);
        Assert.Null(_server.LastClientCertificateSubject);
    }

    [Fact]
    public async Task In_cluster_config_uses_the_service_account_token_ca_and_namespace_and_picks_up_a_rotated_token()
    {
        var sa = Directory.CreateDirectory(Path.Combine(_dir, "serviceaccount")).FullName;
        await File.WriteAllTextAsync(Path.Combine(sa, "token"), "sa-token-1");
        await File.WriteAllTextAsync(Path.Combine(sa, "ca.crt"), _ca.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.Combine(sa, "namespace"), "tokengate-system");
        var oldHost = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST");
        var oldPort = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT");
        Environment.SetEnvironmentVariable("KUBERNETES_SERVICE_HOST", "127.0.0.1");
        Environment.SetEnvironmentVariable("KUBERNETES_SERVICE_PORT", _server.BaseAddress.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        KubernetesClientConfiguration config;
        try
        {
            config = KubernetesClientConfiguration.InCluster(sa);
        }
        finally
        {
            Environment.SetEnvironmentVariable("KUBERNETES_SERVICE_HOST", oldHost);
            Environment.SetEnvironmentVariable("KUBERNETES_SERVICE_PORT", oldPort);
        }
        Assert.Equal("tokengate-system", config.Namespace);
        using var client = new KubernetesClient(config);
        var widgets = client.Resource<Widget>(KubeTestContext.WidgetDefinition, KubeTestContext.Json);

        await widgets.ListAsync("default");
        Assert.Equal("Bearer sa-token-1", _server.LastAuthorization);

        // The kubelet rotates the projected token by replacing the file.
        await File.WriteAllTextAsync(Path.Combine(sa, "token"), "sa-token-2");
        File.SetLastWriteTimeUtc(Path.Combine(sa, "token"), DateTime.UtcNow.AddSeconds(10));
        await widgets.ListAsync("default");
        Assert.Equal("Bearer sa-token-2", _server.LastAuthorization);
    }

    [Fact]
    public async Task Informer_watches_over_http2_and_survives_dropped_streams()
    {
        var path = WriteKubeconfig($"    certificate-authority-data: {B64(_ca.ExportCertificatePem())}");
        using var client = new KubernetesClient(KubernetesClientConfiguration.Load(path));
        var widgets = client.Resource<Widget>(KubeTestContext.WidgetDefinition, KubeTestContext.Json);
        var informer = new Gateway.Kubernetes.Informers.Informer<Widget>(widgets, new Gateway.Kubernetes.Informers.InformerOptions { InitialBackoff = TimeSpan.FromMilliseconds(20), BackoffJitter = 0 });
        using var cts = new CancellationTokenSource();
        var run = informer.RunAsync(cts.Token);
        await informer.WaitForSyncAsync(cts.Token).WaitAsync(TimeSpan.FromSeconds(30));

        for (var i = 0; i < 6; i++)
        {
            await widgets.CreateAsync(Widget.Named($"h{i}"));
            if (i % 2 == 0) _server.DropAllWatches();
        }

        await Gateway.Testing.Eventually.TrueAsync(() => Task.FromResult(informer.Store.Count == 6), "all objects over HTTP/2");
        Assert.Equal(1, informer.ListCount);
        await cts.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
