using System.Text;
using static Gateway.Proxy.Tests.Fuzz.FuzzBodies;
using static Gateway.Proxy.Tests.Fuzz.FuzzGenerator;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>The detail of each class (bodies in <see cref="FuzzBodies"/>, framing in <see cref="FuzzFraming"/>).</summary>
internal static class FuzzCases
{
    private static readonly string[] KeyHeaders = ["authorization", "x-api-key", "api-key"];

    public static FuzzCase Build(FuzzClass cls, FuzzRoute route, int index, Random r, int bodyLimit)
    {
        var model = ModelFor(route, r);
        var keyHeader = KeyHeaders[r.Next(KeyHeaders.Length)];
        var stream = r.Next(3) == 0;
        var valid = Encoding.UTF8.GetBytes(Valid(route, Quote(model), stream));
        FuzzCase Case(string what, byte[]? body = null, KeyMode key = KeyMode.Valid, string? contentType = "application/json", bool chunked = false,
            string? method = null, string? path = null, FuzzRoute? expect = null, bool injects = false) => new()
        {
            Index = index, Class = cls, Route = expect ?? route, Description = what, Method = method ?? route.Method, Path = path ?? route.Path,
            Key = key, KeyHeader = keyHeader, ContentType = route.Method == "GET" && contentType == "application/json" ? null : contentType,
            Body = route.Method == "GET" && method is null ? null : body ?? valid, Chunked = chunked, Injects = injects,
        };

        switch (cls)
        {
            case FuzzClass.Valid:
                return WithDialectHeader(Case(stream ? "valid, streaming" : "valid"), route, r);
            case FuzzClass.MalformedJson:
            {
                var (b, what) = Malformed(valid, r);
                return Case(what, b);
            }
            case FuzzClass.DeepNesting:
            {
                var (b, what) = DeepNesting(Quote(model), r);
                return Case(what, b);
            }
            case FuzzClass.HugeNumbers:
            {
                var (b, what) = HugeNumbers(route, Quote(model), r);
                return Case(what, b);
            }
            case FuzzClass.HugeStrings:
            {
                var (b, what) = HugeStrings(route, Quote(model), r);
                return Case(what, b);
            }
            case FuzzClass.InvalidUtf8:
            {
                var (b, what) = InvalidUtf8(route, model, r);
                return Case(what, b);
            }
            case FuzzClass.DuplicateKeys:
            {
                var (b, what) = DuplicateKeys(route, model, r);
                return Case(what, b);
            }
            case FuzzClass.ContentType:
            {
                string?[] types =
                [
                    null, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp",
                    "APPLICATION/JSON", "application/json; charset=utf-16", "application/json;charset=\"", "text/json", "*/*", "application/",
                    "application/json, text/plain",
                ];
                var t = types[r.Next(types.Length)];
                return Case("Content-Type " + (t is null ? "missing" : "'" + t + "'"), contentType: t);
            }
            case FuzzClass.OversizedBody:
            {
                var size = bodyLimit + 1 + r.Next(bodyLimit);
                var body = Encoding.UTF8.GetBytes(Valid(route, Quote(model), false).Replace("Hello there", new string('x', size), StringComparison.Ordinal));
                var chunked = r.Next(2) == 0;
                return Case($"{body.Length} byte body ({(chunked ? "chunked" : "Content-Length")})", body, chunked: chunked);
            }
            case FuzzClass.Auth:
            {
                var mode = (KeyMode)(1 + r.Next(5));
                return WithDialectHeader(Case("key " + mode, key: mode), route, r);
            }
            case FuzzClass.LabelExplosion:
            {
                var invented = r.Next(5) switch
                {
                    0 => model.ToUpperInvariant(),
                    1 => model + " ",
                    2 => $"{InventedModelMarker}-{r.Next():x}\n# TYPE x counter\nx{{a=\"1\"}} 1",
                    3 => $"{InventedModelMarker}\"}} 1\n{InventedModelMarker}{{",
                    _ => $"{InventedModelMarker}-{r.NextInt64():x}-{r.Next():x}",
                };
                return Case("invented model " + Quote(invented), Encoding.UTF8.GetBytes(Valid(route, Quote(invented), stream)));
            }
            case FuzzClass.HeaderInjection:
                return Injection(Case("", injects: true), r);
            case FuzzClass.Method:
            {
                string[] methods = route.Method == "POST" ? ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] : ["POST", "PUT", "DELETE", "PATCH"];
                var m = methods[r.Next(methods.Length)];
                return Case(m + " on a " + route.Method + " route", method: m, body: m is "GET" or "HEAD" or "OPTIONS" ? null : valid);
            }
            case FuzzClass.Path:
                return PathVariant(route, r, Case);
            case FuzzClass.Framing:
                return FuzzFraming.Framing(Case("", valid).Route, index, keyHeader, valid, r);
            case FuzzClass.OversizedHeaders:
                return FuzzFraming.OversizedHead(route, index, keyHeader, valid, r);
            case FuzzClass.BadHeaderBytes:
                return FuzzFraming.BadHeaderBytes(route, index, keyHeader, valid, r);
            default:
                return FuzzFraming.TruncatedBody(route, index, keyHeader, valid, r);
        }
    }

    private static FuzzCase WithDialectHeader(FuzzCase c, FuzzRoute route, Random r)
    {
        if (route.DialectByHeader && r.Next(2) == 0) c.Headers.Add(new("anthropic-version", "2023-06-01"));
        return c;
    }

    private delegate FuzzCase CaseFactory(string what, byte[]? body = null, KeyMode key = KeyMode.Valid, string? contentType = "application/json", bool chunked = false,
        string? method = null, string? path = null, FuzzRoute? expect = null, bool injects = false);

    private static FuzzCase PathVariant(FuzzRoute route, Random r, CaseFactory make)
    {
        // An unknown path answers in the Anthropic shape under the Messages paths, else as anthropic-version says.
        static FuzzRoute Unknown(FuzzRoute route, string path) => new("", route.Method,
            path.StartsWith("/v1/messages", StringComparison.OrdinalIgnoreCase) || path.StartsWith("/cc/v1/messages", StringComparison.OrdinalIgnoreCase) ? Gateway.Proxy.Requests.ApiDialect.Anthropic : null, "unknown");
        FuzzCase To(string what, string path, bool known) => make(what, path: path, expect: known ? null : Unknown(route, path));
        return r.Next(9) switch
        {
            0 => To("trailing slash", route.Path + "/", true),
            1 => To("upper case", route.Path.ToUpperInvariant(), true),
            2 => To("query string", route.Path + "?api-version=1&x=%00", true),
            3 => To("double slash", "/" + route.Path, false),
            4 => To("unknown path", route.Path + "/extra", false),
            5 => To("other version", route.Path.Replace("/v1/", "/v2/", StringComparison.Ordinal), false),
            6 => To("encoded slash", route.Path.Replace("/v1/", "/v1%2F", StringComparison.Ordinal), false),
            7 => To("dot segments", "/x/.." + route.Path, true),
            _ => To("long path", "/v1/" + new string('a', 4000), false),
        };
    }

    /// <summary>A valid request plus headers that must not cross the proxy, each carrying the canary.</summary>
    private static FuzzCase Injection(FuzzCase c, Random r)
    {
        (string, string)[] candidates =
        [
            ("Proxy-Authorization", "Basic " + Canary), ("Proxy-Connection", Canary), ("Keep-Alive", "timeout=5, " + Canary), ("TE", Canary),
            ("Trailer", "x-" + Canary), ("Upgrade", Canary), ("Cookie", "session=" + Canary), ("x-tokengate-user", Canary),
            ("x-tokengate-overhead-ms", Canary), ("Connection", "x-fuzz-hop"), ("Connection", "te, x-fuzz-hop2"),
            ("Host", Canary + ".example"), ("Accept-Encoding", "gzip, " + Canary),
        ];
        var count = 1 + r.Next(4);
        var what = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var (name, value) = candidates[r.Next(candidates.Length)];
            if (c.Headers.Exists(h => h.Key == name)) continue;
            c.Headers.Add(new(name, value));
            what.Add(name);
            // A header the Connection header names is hop-by-hop: it carries the canary.
            if (name == "Connection") c.Headers.Add(new(value.Split(',')[^1].Trim(), Canary));
        }
        // Credentials the client adds next to its key: only the account's own may reach the upstream.
        var cred = c.KeyHeader == "authorization" ? r.Next(3) : 1 + r.Next(2);
        if (cred == 1) c.Headers.Add(new(c.KeyHeader == "x-api-key" ? "api-key" : "x-api-key", "sk-" + Canary));
        if (cred == 2 && c.KeyHeader != "authorization") c.Headers.Add(new("Authorization", "Basic " + Canary));
        if (cred > 0) what.Add("extra credential");
        return new FuzzCase
        {
            Index = c.Index, Class = c.Class, Route = c.Route, Description = "injected " + string.Join(", ", what), Method = c.Method, Path = c.Path,
            Key = c.Key, KeyHeader = c.KeyHeader, ContentType = c.ContentType, Body = c.Body, Injects = true,
        }.WithHeaders(c.Headers);
    }

    private static FuzzCase WithHeaders(this FuzzCase c, List<KeyValuePair<string, string>> headers)
    {
        c.Headers.AddRange(headers);
        return c;
    }
}
