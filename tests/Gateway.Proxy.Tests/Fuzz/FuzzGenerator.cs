using System.Text;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>
/// Seeded, reproducible cases: case <c>i</c> of seed <c>s</c> depends on (s, i) only, so one failing case can be
/// re-run alone. Draws a class, a route and a key mode, then the hostile detail of the class.
/// </summary>
public static class FuzzGenerator
{
    /// <summary>The canary every injected header value carries: it must never reach the upstream.</summary>
    public const string Canary = "fuzzcanary";

    /// <summary>Relative weights: body classes dominate, raw-socket classes are cheaper in number.</summary>
    private static readonly (FuzzClass Class, int Weight)[] Weights =
    [
        (FuzzClass.Valid, 6), (FuzzClass.MalformedJson, 14), (FuzzClass.DeepNesting, 4), (FuzzClass.HugeNumbers, 8),
        (FuzzClass.HugeStrings, 3), (FuzzClass.InvalidUtf8, 8), (FuzzClass.DuplicateKeys, 6), (FuzzClass.ContentType, 6),
        (FuzzClass.OversizedBody, 2), (FuzzClass.Auth, 8), (FuzzClass.LabelExplosion, 8), (FuzzClass.HeaderInjection, 8),
        (FuzzClass.Method, 3), (FuzzClass.Path, 4), (FuzzClass.Framing, 6), (FuzzClass.OversizedHeaders, 2),
        (FuzzClass.BadHeaderBytes, 3), (FuzzClass.TruncatedBody, 2),
    ];

    private static readonly int TotalWeight = Weights.Sum(w => w.Weight);

    public static FuzzCase Generate(int seed, int index, int bodyLimit)
    {
        // Not HashCode.Combine: it is randomised per process, and a case must be the same on every run.
        var r = new Random(unchecked((int)((seed * 2654435761L) ^ (index * 40503L) ^ ((long)index << 17))));
        var pick = r.Next(TotalWeight);
        var cls = Weights[^1].Class;
        foreach (var (c, w) in Weights)
        {
            if (pick < w) { cls = c; break; }
            pick -= w;
        }
        var posts = FuzzRoute.All.Where(x => x.Method == "POST").ToArray();
        var route = cls is FuzzClass.Valid or FuzzClass.Auth or FuzzClass.Method or FuzzClass.Path or FuzzClass.HeaderInjection or FuzzClass.BadHeaderBytes
            ? FuzzRoute.All[r.Next(FuzzRoute.All.Length)]
            : posts[r.Next(posts.Length)];
        return FuzzCases.Build(cls, route, index, r, bodyLimit);
    }

    internal static (string Name, string Value) KeyHeaderFor(string header, string key) =>
        header == "authorization" ? ("Authorization", "Bearer " + key) : (header, key);

    /// <summary>An HTTP/1.1 request as bytes; <paramref name="head"/> lines are joined with CRLF unless they carry their own ending.</summary>
    internal static byte[] RawRequest(string requestLine, IEnumerable<string> head, byte[] body, string lineEnd = "\r\n")
    {
        var sb = new StringBuilder(requestLine).Append(lineEnd);
        foreach (var h in head) sb.Append(h).Append(lineEnd);
        sb.Append(lineEnd);
        return [.. Encoding.Latin1.GetBytes(sb.ToString()), .. body];
    }
}
