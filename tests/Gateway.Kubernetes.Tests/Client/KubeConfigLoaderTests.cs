using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Gateway.Kubernetes.Client;

namespace Gateway.Kubernetes.Tests.Client;

public sealed class KubeConfigLoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tg-kubeconfig-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Reads_token_namespace_and_server_of_the_current_context()
    {
        var yaml = """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: other
              cluster:
                server: https://other.example:6443
            - name: local
              cluster:
                server: https://127.0.0.1:6443
                insecure-skip-tls-verify: true
            users:
            - name: me
              user:
                token: sekret-token
            contexts:
            - name: prod
              context: {cluster: other, user: me}
            - name: dev
              context:
                cluster: local
                user: me
                namespace: team-a
            """;

        var config = KubeConfigLoader.LoadYaml(yaml, _dir);

        Assert.Equal(new Uri("https://127.0.0.1:6443/"), config.Server);
        Assert.Equal("team-a", config.Namespace);
        Assert.True(config.InsecureSkipTlsVerify);
        Assert.Equal("sekret-token", await config.Token!.GetTokenAsync(default));

        var prod = KubeConfigLoader.LoadYaml(yaml, _dir, context: "prod");
        Assert.Equal("other.example", prod.Server.Host);
        Assert.Equal("default", prod.Namespace);
        Assert.False(prod.InsecureSkipTlsVerify);
    }

    [Theory]
    [InlineData("rsa")]
    [InlineData("ec")]
    public void Reads_inline_client_certificate_key_and_ca(string keyType)
    {
        var (caPem, certPem, keyPem, thumbprint, caThumbprint) = MakeCertificates(keyType);
        var yaml = $"""
            current-context: c
            clusters:
            - name: k
              cluster:
                server: https://10.0.0.1:443
                certificate-authority-data: {B64(caPem)}
            users:
            - name: u
              user:
                client-certificate-data: {B64(certPem)}
                client-key-data: {B64(keyPem)}
            contexts:
            - name: c
              context:
                cluster: k
                user: u
            """;

        var config = KubeConfigLoader.LoadYaml(yaml, _dir);

        Assert.NotNull(config.ClientCertificate);
        Assert.True(config.ClientCertificate!.HasPrivateKey);
        Assert.Equal(thumbprint, config.ClientCertificate.Thumbprint);
        Assert.Equal(caThumbprint, Assert.Single(config.CertificateAuthority!).Thumbprint);
        Assert.Null(config.Token);
        using var handler = config.CreateHandler();
        Assert.NotNull(handler.SslOptions.RemoteCertificateValidationCallback);
    }

    [Fact]
    public async Task Reads_certificate_files_relative_to_the_kubeconfig_and_the_kubeconfig_path()
    {
        var (caPem, certPem, keyPem, thumbprint, _) = MakeCertificates("rsa");
        Directory.CreateDirectory(Path.Combine(_dir, "pki"));
        File.WriteAllText(Path.Combine(_dir, "pki", "ca.crt"), caPem);
        File.WriteAllText(Path.Combine(_dir, "pki", "client.crt"), certPem);
        File.WriteAllText(Path.Combine(_dir, "pki", "client.key"), keyPem);
        File.WriteAllText(Path.Combine(_dir, "token"), "file-token\n");
        var path = Path.Combine(_dir, "config");
        File.WriteAllText(path, """
            current-context: c
            clusters:
            - name: k
              cluster:
                server: https://127.0.0.1:6443
                certificate-authority: pki/ca.crt
            users:
            - name: u
              user:
                client-certificate: pki/client.crt
                client-key: pki/client.key
                tokenFile: token
            contexts:
            - name: c
              context: {cluster: k, user: u}
            """);

        var config = KubernetesClientConfiguration.Load(path);

        Assert.Equal(thumbprint, config.ClientCertificate!.Thumbprint);
        Assert.Single(config.CertificateAuthority!);
        Assert.Equal("file-token", await config.Token!.GetTokenAsync(default));
    }

    [Fact]
    public async Task File_token_source_rereads_a_rotated_token()
    {
        var path = Path.Combine(_dir, "sa-token");
        await File.WriteAllTextAsync(path, "first");
        var source = new FileTokenSource(path);
        Assert.Equal("first", await source.GetTokenAsync(default));

        await File.WriteAllTextAsync(path, "second");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(5));
        Assert.Equal("second", await source.GetTokenAsync(default));
    }

    [Fact]
    public void Missing_context_is_a_clear_error()
    {
        var e = Assert.Throws<InvalidOperationException>(() => KubeConfigLoader.LoadYaml("current-context: nope\ncontexts: []\n", _dir));
        Assert.Contains("nope", e.Message, StringComparison.Ordinal);
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    private static (string CaPem, string CertPem, string KeyPem, string Thumbprint, string CaThumbprint) MakeCertificates(string keyType)
    {
        using var caKey = RSA.Create(2048);
        var caReq = new CertificateRequest("CN=test-ca", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var ca = caReq.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));

        AsymmetricAlgorithm key = keyType == "ec" ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        using (key)
        {
            var req = key is ECDsa ec
                ? new CertificateRequest("CN=operator", ec, HashAlgorithmName.SHA256)
                : new CertificateRequest("CN=operator", (RSA)key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            // An RSA CA signs the EC leaf too, as with kubeadm clusters that mix key types.
            var signer = X509SignatureGenerator.CreateForRSA(caKey, RSASignaturePadding.Pkcs1);
            using var signed = req.Create(ca.SubjectName, signer, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1), [1, 2, 3, 4]);
            using var cert = key is ECDsa ecKey ? signed.CopyWithPrivateKey(ecKey) : signed.CopyWithPrivateKey((RSA)key);
            // kubeadm writes "RSA PRIVATE KEY"/"EC PRIVATE KEY" (PKCS#1 / SEC1) blocks; use those forms.
            var keyPem = key is ECDsa e ? e.ExportECPrivateKeyPem() : ((RSA)key).ExportRSAPrivateKeyPem();
            return (ca.ExportCertificatePem(), cert.ExportCertificatePem(), keyPem, cert.Thumbprint, ca.Thumbprint);
        }
    }
}
