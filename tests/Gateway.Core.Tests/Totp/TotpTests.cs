using System.Text;
using Gateway.Core.Totp;

namespace Gateway.Core.Tests.Totp;

public sealed class TotpTests
{
    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly byte[] s_sha1Seed = Encoding.ASCII.GetBytes("12345678901234567890");
    private static readonly byte[] s_sha256Seed = Encoding.ASCII.GetBytes("12345678901234567890123456789012");
    private static readonly byte[] s_sha512Seed = Encoding.ASCII.GetBytes("1234567890123456789012345678901234567890123456789012345678901234");

    // RFC 6238 Appendix B.
    [Theory]
    [InlineData(59L, "94287082", "46119246", "90693936")]
    [InlineData(1111111109L, "07081804", "68084774", "25091201")]
    [InlineData(1111111111L, "14050471", "67062674", "99943326")]
    [InlineData(1234567890L, "89005924", "91819424", "93441116")]
    [InlineData(2000000000L, "69279037", "90698825", "38618901")]
    [InlineData(20000000000L, "65353130", "77737706", "47863826")]
    public void Computes_rfc6238_test_vectors_for_all_algorithms(long unixSeconds, string sha1, string sha256, string sha512)
    {
        var at = DateTimeOffset.FromUnixTimeSeconds(unixSeconds);
        var time = new ManualTime(at);
        Assert.Equal(sha1, new TotpService(time, new TotpParameters { Digits = 8, Algorithm = TotpAlgorithm.Sha1 }).ComputeCode(s_sha1Seed));
        Assert.Equal(sha256, new TotpService(time, new TotpParameters { Digits = 8, Algorithm = TotpAlgorithm.Sha256 }).ComputeCode(s_sha256Seed));
        Assert.Equal(sha512, new TotpService(time, new TotpParameters { Digits = 8, Algorithm = TotpAlgorithm.Sha512 }).ComputeCode(s_sha512Seed, at));
    }

    // RFC 4226 Appendix D.
    [Theory]
    [InlineData(0, "755224")]
    [InlineData(1, "287082")]
    [InlineData(2, "359152")]
    [InlineData(3, "969429")]
    [InlineData(4, "338314")]
    [InlineData(5, "254676")]
    [InlineData(6, "287922")]
    [InlineData(7, "162583")]
    [InlineData(8, "399871")]
    [InlineData(9, "520489")]
    public void Computes_rfc4226_hotp_test_vectors(long counter, string expected) =>
        Assert.Equal(expected, Hotp.Compute(s_sha1Seed, counter));

    [Fact]
    public void Verifies_codes_from_the_previous_current_and_next_step_and_reports_the_step()
    {
        var time = new ManualTime(DateTimeOffset.FromUnixTimeSeconds(1_700_000_015));
        var totp = new TotpService(time);
        var now = totp.CurrentTimeStep();
        Assert.Equal(1_700_000_015 / 30, now);
        foreach (var step in new[] { now - 1, now, now + 1 })
        {
            var result = totp.Verify(s_sha1Seed, totp.ComputeCodeForStep(s_sha1Seed, step));
            Assert.True(result.Success);
            Assert.Equal(step, result.TimeStep);
        }
        Assert.False(totp.Verify(s_sha1Seed, totp.ComputeCodeForStep(s_sha1Seed, now - 2)).Success);
        Assert.False(totp.Verify(s_sha1Seed, totp.ComputeCodeForStep(s_sha1Seed, now + 2)).Success);
    }

    [Fact]
    public void Rejects_a_code_whose_step_was_already_accepted()
    {
        var time = new ManualTime(DateTimeOffset.FromUnixTimeSeconds(1_700_000_015));
        var totp = new TotpService(time);
        var code = totp.ComputeCode(s_sha1Seed);
        var first = totp.Verify(s_sha1Seed, code);
        Assert.True(first.Success);
        Assert.False(totp.Verify(s_sha1Seed, code, lastAcceptedStep: first.TimeStep).Success);

        // The next step's code is still accepted after the previous one was used.
        time.Now = time.Now.AddSeconds(30);
        var next = totp.Verify(s_sha1Seed, totp.ComputeCode(s_sha1Seed), lastAcceptedStep: first.TimeStep);
        Assert.True(next.Success);
        Assert.Equal(first.TimeStep + 1, next.TimeStep);
    }

    [Theory]
    [InlineData("")]
    [InlineData("12345")]
    [InlineData("1234567")]
    [InlineData("12a456")]
    [InlineData("１２３４５６")]
    public void Rejects_malformed_codes(string code)
    {
        var totp = new TotpService(new ManualTime(DateTimeOffset.FromUnixTimeSeconds(1_700_000_015)));
        Assert.False(totp.Verify(s_sha1Seed, code).Success);
    }

    [Fact]
    public void Rejects_a_wrong_code()
    {
        var totp = new TotpService(new ManualTime(DateTimeOffset.FromUnixTimeSeconds(59)));
        // 287082 is the step-1 code; at t=59 (step 1) with window ±1 steps 0..2 are valid, so pick another counter's code.
        var wrong = Hotp.Compute(s_sha1Seed, 9);
        Assert.False(totp.Verify(s_sha1Seed, wrong).Success);
        Assert.True(totp.Verify(s_sha1Seed, " 287082 ").Success);
    }

    [Fact]
    public void Generates_160_bit_secrets_that_round_trip_through_base32()
    {
        var a = TotpService.GenerateSecret();
        var b = TotpService.GenerateSecret();
        Assert.Equal(20, a.Length);
        Assert.NotEqual(a, b);
        var text = TotpService.GenerateBase32Secret();
        Assert.Equal(32, text.Length);
        Assert.DoesNotContain('=', text);
        Assert.Equal(20, Base32.Decode(text).Length);
    }

    // RFC 4648 section 10 vectors, written without padding.
    [Theory]
    [InlineData("", "")]
    [InlineData("f", "MY")]
    [InlineData("fo", "MZXQ")]
    [InlineData("foo", "MZXW6")]
    [InlineData("foob", "MZXW6YQ")]
    [InlineData("fooba", "MZXW6YTB")]
    [InlineData("foobar", "MZXW6YTBOI")]
    public void Encodes_rfc4648_vectors_without_padding(string plain, string encoded)
    {
        Assert.Equal(encoded, Base32.Encode(Encoding.ASCII.GetBytes(plain)));
        Assert.Equal(plain, Encoding.ASCII.GetString(Base32.Decode(encoded)));
        Assert.Equal(plain, Encoding.ASCII.GetString(Base32.Decode(encoded.ToLowerInvariant())));
    }

    [Fact]
    public void Round_trips_every_length_and_accepts_padding_and_grouping()
    {
        var rng = new Random(42);
        for (var len = 0; len <= 70; len++)
        {
            var data = new byte[len];
            rng.NextBytes(data);
            var text = Base32.Encode(data);
            Assert.Equal(data, Base32.Decode(text));
            var padded = text + new string('=', (8 - text.Length % 8) % 8);
            Assert.Equal(data, Base32.Decode(padded));
        }
        Assert.Equal(Encoding.ASCII.GetBytes("foobar"), Base32.Decode("mzxw 6ytb-oi======"));
    }

    [Theory]
    [InlineData("MZXW1")]   // '1' is not in the alphabet
    [InlineData("MZ=XW")]   // data after padding
    [InlineData("MZXW6YR")] // non-zero trailing bits
    [InlineData("M")]       // a lone character cannot encode a byte
    public void Rejects_invalid_base32(string text)
    {
        Assert.False(Base32.TryDecode(text, out _));
        Assert.Throws<FormatException>(() => Base32.Decode(text));
    }

    [Fact]
    public void Builds_an_escaped_otpauth_uri()
    {
        var uri = OtpAuthUri.Build("Token Gate & Co", "alice@example.com", "jbsw y3dp-ehpk3pxp");
        Assert.Equal(
            "otpauth://totp/Token%20Gate%20%26%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Token%20Gate%20%26%20Co&algorithm=SHA1&digits=6&period=30",
            uri);
        var parsed = new Uri(uri);
        Assert.Equal("otpauth", parsed.Scheme);
        Assert.Equal("totp", parsed.Host);

        var sha512 = OtpAuthUri.Build("TokenGate", "bob", "JBSWY3DPEHPK3PXP", new TotpParameters { Algorithm = TotpAlgorithm.Sha512, Digits = 8, PeriodSeconds = 60 });
        Assert.EndsWith("&algorithm=SHA512&digits=8&period=60", sha512);
    }

    [Fact]
    public void Refuses_colons_in_the_label_and_invalid_parameters()
    {
        Assert.Throws<ArgumentException>(() => OtpAuthUri.Build("Token:Gate", "alice", "JBSWY3DPEHPK3PXP"));
        Assert.Throws<ArgumentException>(() => OtpAuthUri.Build("TokenGate", "a:lice", "JBSWY3DPEHPK3PXP"));
        Assert.Throws<ArgumentException>(() => OtpAuthUri.Build("TokenGate", "alice", "not base32!"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TotpService(TimeProvider.System, new TotpParameters { Digits = 7 }));
    }
}
