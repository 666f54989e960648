using Gateway.Core.Totp;
using QRCoder;

namespace Gateway.Portal.Auth;

/// <summary>How a new TOTP secret is shown to the user (enrolment and TOTP reset): a QR code and the grouped base32 key.</summary>
public static class TotpQr
{
    /// <summary>The base32 secret in groups of four characters, easier to type into an app.</summary>
    public static string DisplaySecret(string base32Secret) =>
        string.Join(' ', base32Secret.Chunk(4).Select(c => new string(c)));

    /// <summary>A PNG data URI of the otpauth:// QR code (served inline: no extra request, no CDN).</summary>
    public static string DataUri(string issuer, string login, string base32Secret)
    {
        var uri = OtpAuthUri.Build(issuer, login, base32Secret);
        using var generator = new QRCodeGenerator();
        using var data = generator.CreateQrCode(uri, QRCodeGenerator.ECCLevel.M);
        var png = new PngByteQRCode(data).GetGraphic(5);
        return "data:image/png;base64," + Convert.ToBase64String(png);
    }
}
