using System.Globalization;
using System.Text;
using static Gateway.Proxy.Tests.Fuzz.FuzzGenerator;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>Cases only a raw socket can send: conflicting framing, oversized heads, forbidden bytes, bodies that end early.</summary>
internal static class FuzzFraming
{
    private static List<string> Head(RawContext x, string keyHeader, FuzzRoute route)
    {
        var (name, value) = KeyHeaderFor(keyHeader, x.Key);
        var head = new List<string> { "Host: " + x.Authority, name + ": " + value, UpstreamWitness.CaseHeader + ": " + x.CaseId, "Connection: close" };
        if (route.Method == "POST") head.Add("Content-Type: application/json");
        return head;
    }

    private static string Line(FuzzRoute route) => route.Method + " " + route.Path + " HTTP/1.1";

    private static string Chunked(byte[] body, int pieces)
    {
        var sb = new StringBuilder();
        var size = Math.Max(1, body.Length / pieces);
        for (var i = 0; i < body.Length; i += size)
        {
            var n = Math.Min(size, body.Length - i);
            sb.Append(n.ToString("x", CultureInfo.InvariantCulture)).Append("\r\n").Append(Encoding.Latin1.GetString(body, i, n)).Append("\r\n");
        }
        return sb.Append("0\r\n\r\n").ToString();
    }

    public static FuzzCase Framing(FuzzRoute route, int index, string keyHeader, byte[] valid, Random r)
    {
        var post = route.Method == "POST" ? route : FuzzRoute.All[0];
        var variant = r.Next(14);
        var pieces = 1 + r.Next(4);
        string what;
        Func<RawContext, byte[]> build;
        switch (variant)
        {
            case 0:
                what = "Content-Length and Transfer-Encoding: chunked";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Content-Length: " + (valid.Length + 7), "Transfer-Encoding: chunked"], Encoding.Latin1.GetBytes(Chunked(valid, pieces)));
                break;
            case 1:
                what = "two different Content-Lengths";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Content-Length: " + valid.Length, "Content-Length: " + (valid.Length - 3)], valid);
                break;
            case 2:
            {
                string[] bad = ["-1", "+" , " 1 2", "0x10", "1e3", "99999999999999999999999", "abc", ""];
                var v = bad[r.Next(bad.Length)];
                what = $"Content-Length '{v}'";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Content-Length: " + v], valid);
                break;
            }
            case 3:
            {
                string[] te = ["gzip, chunked", "chunked, gzip", "identity", "xchunked", "chunked, chunked", "Chunked", " chunked", "chunked;q=1"];
                var v = te[r.Next(te.Length)];
                what = $"Transfer-Encoding '{v}'";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Transfer-Encoding: " + v], Encoding.Latin1.GetBytes(Chunked(valid, pieces)));
                break;
            }
            case 4:
            {
                string[] sizes = ["zz", "ffffffffffffffffff", "-5", "5 5", "5;" + new string('e', 5000)];
                var v = sizes[r.Next(sizes.Length)];
                what = $"chunk size '{(v.Length > 20 ? v[..20] + "…" : v)}'";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Transfer-Encoding: chunked"], Encoding.Latin1.GetBytes(v + "\r\n" + Encoding.Latin1.GetString(valid) + "\r\n0\r\n\r\n"));
                break;
            }
            case 5:
                what = "chunk data longer than its size";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Transfer-Encoding: chunked"], Encoding.Latin1.GetBytes("4\r\n" + Encoding.Latin1.GetString(valid) + "\r\n0\r\n\r\n"));
                break;
            case 6:
                what = "bare LF line endings";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Content-Length: " + valid.Length], valid, "\n");
                break;
            case 7:
                what = "obsolete line folding";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Content-Length: " + valid.Length, "x-folded: a", " b"], valid);
                break;
            case 8:
                what = "absolute-form request target";
                build = x => RawRequest(post.Method + " http://" + Canary + ".example" + post.Path + " HTTP/1.1", [.. Head(x, keyHeader, post), "Content-Length: " + valid.Length], valid);
                break;
            case 9:
            {
                string[] versions = ["HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1.1 extra", "http/1.1", ""];
                var v = versions[r.Next(versions.Length)];
                what = $"request line version '{v}'";
                build = x => RawRequest((post.Method + " " + post.Path + " " + v).TrimEnd(), [.. Head(x, keyHeader, post), "Content-Length: " + valid.Length], valid);
                break;
            }
            case 10:
                what = "two Host headers";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Host: " + Canary + ".example", "Content-Length: " + valid.Length], valid);
                break;
            case 11:
                what = "pipelined second request hidden after a Content-Length body";
                build = x =>
                {
                    var smuggled = Encoding.ASCII.GetBytes("GET /v1/models HTTP/1.1\r\nHost: " + x.Authority + "\r\n\r\n");
                    return RawRequest(Line(post), [.. Head(x, keyHeader, post).Where(h => h != "Connection: close"), "Content-Length: " + valid.Length, "Transfer-Encoding: chunked"], [.. Encoding.ASCII.GetBytes("0\r\n\r\n"), .. smuggled]);
                };
                break;
            case 12:
                what = "Expect: 100-continue";
                build = x => RawRequest(Line(post), [.. Head(x, keyHeader, post), "Expect: 100-continue", "Content-Length: " + valid.Length], valid);
                break;
            default:
                what = "lower-case method and a space in the target";
                build = x => RawRequest(post.Method.ToLowerInvariant() + " " + post.Path + " x HTTP/1.1", [.. Head(x, keyHeader, post), "Content-Length: " + valid.Length], valid);
                break;
        }
        return new FuzzCase { Index = index, Class = FuzzClass.Framing, Route = post, Description = what, Method = post.Method, Path = post.Path, KeyHeader = keyHeader, RawBuilder = build, ProtocolLevel = true };
    }

    public static FuzzCase OversizedHead(FuzzRoute route, int index, string keyHeader, byte[] valid, Random r)
    {
        var variant = r.Next(4);
        var (what, extra) = variant switch
        {
            0 => ("one 40 KB header", new List<string> { "x-big: " + new string('a', 40_000) }),
            1 => ("120 headers", Enumerable.Range(0, 120).Select(i => "x-h" + i + ": v").ToList()),
            2 => ("9 KB request target", new List<string>()),
            _ => ("300 headers of 120 bytes", Enumerable.Range(0, 300).Select(i => "x-h" + i + ": " + new string('b', 120)).ToList()),
        };
        var path = variant == 2 ? route.Path + "?q=" + new string('q', 9_000) : route.Path;
        var body = route.Method == "POST" ? valid : [];
        return new FuzzCase
        {
            Index = index, Class = FuzzClass.OversizedHeaders, Route = route, Description = what, Method = route.Method, Path = route.Path, KeyHeader = keyHeader, ProtocolLevel = true,
            RawBuilder = x => RawRequest(route.Method + " " + path + " HTTP/1.1", [.. Head(x, keyHeader, route), .. extra, "Content-Length: " + body.Length], body),
        };
    }

    public static FuzzCase BadHeaderBytes(FuzzRoute route, int index, string keyHeader, byte[] valid, Random r)
    {
        (string Name, string Value, string What)[] variants =
        [
            ("x-request-id", "a\u007fb", "DEL in x-request-id"), ("x-request-id", "a\u0001b", "control byte in x-request-id"),
            ("x-request-id", "caf\u00e9", "Latin-1 byte in x-request-id"), ("x-note", "\u00c3\u00a9t\u00c3\u00a9", "UTF-8 bytes in a header"),
            ("x-note", "a\u0000b", "NUL in a header"), ("bad name", "v", "space in a header name"), ("x-note\u00e9", "v", "non-ASCII header name"),
            ("x-request-id", new string('r', 4000), "4000-char x-request-id"), ("", "v", "empty header name"), ("x-note", "a\rb", "bare CR in a header"),
        ];
        var (name, value, what) = variants[r.Next(variants.Length)];
        var body = route.Method == "POST" ? valid : [];
        return new FuzzCase
        {
            Index = index, Class = FuzzClass.BadHeaderBytes, Route = route, Description = what, Method = route.Method, Path = route.Path, KeyHeader = keyHeader, ProtocolLevel = true,
            RawBuilder = x => RawRequest(route.Method + " " + route.Path + " HTTP/1.1", [.. Head(x, keyHeader, route), name + ": " + value, "Content-Length: " + body.Length], body),
        };
    }

    /// <summary>The body ends before its Content-Length (or its last chunk) and the client stops sending.</summary>
    public static FuzzCase TruncatedBody(FuzzRoute route, int index, string keyHeader, byte[] valid, Random r)
    {
        var chunked = r.Next(2) == 0;
        var cut = 1 + r.Next(valid.Length - 1);
        return new FuzzCase
        {
            Index = index, Class = FuzzClass.TruncatedBody, Route = route, Description = $"{(chunked ? "chunked" : "Content-Length")} body cut at {cut} of {valid.Length}",
            Method = route.Method, Path = route.Path, KeyHeader = keyHeader, HalfClose = true,
            RawBuilder = x => chunked
                ? RawRequest(Line(route), [.. Head(x, keyHeader, route), "Transfer-Encoding: chunked"], Encoding.Latin1.GetBytes(valid.Length.ToString("x", CultureInfo.InvariantCulture) + "\r\n" + Encoding.Latin1.GetString(valid, 0, cut)))
                : RawRequest(Line(route), [.. Head(x, keyHeader, route), "Content-Length: " + valid.Length], valid[..cut]),
        };
    }
}
