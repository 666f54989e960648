using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>
/// The certificates and keys a loopback kube-apiserver needs, made with .NET's crypto at test start (no
/// openssl): a CA, a serving certificate for 127.0.0.1/localhost, an admin client certificate in the
/// <c>system:masters</c> group, and the service-account token signing key pair. Written as PEM files.
/// </summary>
public sealed class TestPki
{
    private TestPki(string dir) => Directory = dir;

    public string Directory { get; }
    public string CaCertFile => Path.Combine(Directory, "ca.crt");
    public string ServingCertFile => Path.Combine(Directory, "apiserver.crt");
    public string ServingKeyFile => Path.Combine(Directory, "apiserver.key");
    public string AdminCertFile => Path.Combine(Directory, "admin.crt");
    public string AdminKeyFile => Path.Combine(Directory, "admin.key");
    public string ServiceAccountPublicKeyFile => Path.Combine(Directory, "sa.pub");
    public string ServiceAccountPrivateKeyFile => Path.Combine(Directory, "sa.key");

    public static TestPki Create(string dir)
    {
        System.IO.Directory.CreateDirectory(dir);
        var pki = new TestPki(dir);
        var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = DateTimeOffset.UtcNow.AddDays(1);

        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=tokengate-test-ca", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(notBefore, notAfter);
        File.WriteAllText(pki.CaCertFile, ca.ExportCertificatePem());

        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        san.AddDnsName("kubernetes.default.svc");
        Issue(ca, "CN=kube-apiserver", san.Build(), "1.3.6.1.5.5.7.3.1", pki.ServingCertFile, pki.ServingKeyFile, notBefore, notAfter);
        // The API server maps a client certificate's CN to the user and each O to a group.
        Issue(ca, "CN=tokengate-test-admin, O=system:masters", null, "1.3.6.1.5.5.7.3.2", pki.AdminCertFile, pki.AdminKeyFile, notBefore, notAfter);

        using var saKey = RSA.Create(2048);
        File.WriteAllText(pki.ServiceAccountPrivateKeyFile, saKey.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(pki.ServiceAccountPublicKeyFile, saKey.ExportSubjectPublicKeyInfoPem());
        return pki;
    }

    private static void Issue(X509Certificate2 ca, string subject, X509Extension? san, string usageOid, string certFile, string keyFile, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usageOid)], false));
        if (san is not null) request.CertificateExtensions.Add(san);
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var cert = request.Create(ca, notBefore, notAfter, serial);
        File.WriteAllText(certFile, cert.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
    }
}
