using System.Text;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>Request bodies: a valid one per route, and the ways to spoil it.</summary>
public static class FuzzBodies
{
    /// <summary>Models the harness's upstream serves (a bounded label set).</summary>
    public static readonly string[] KnownModels = ["gpt-4o-mini", "gpt-4o", "mapped-mini", "custom-priced", "claude-sonnet-4-5", "text-embedding-3-small"];

    /// <summary>Marks every model name the fuzzer invents, so /metrics can be searched for it.</summary>
    public const string InventedModelMarker = "fzm";

    public static string ModelFor(FuzzRoute route, Random r) => route.Kind switch
    {
        "embeddings" => "text-embedding-3-small",
        "messages" or "count_tokens" => r.Next(3) == 0 ? "mapped-mini" : "claude-sonnet-4-5",
        _ => r.Next(4) switch { 0 => "gpt-4o", 1 => "mapped-mini", 2 => "custom-priced", _ => "gpt-4o-mini" },
    };

    /// <summary>A small valid body for the route (max tokens small so the mock answers at once).</summary>
    public static string Valid(FuzzRoute route, string modelJson, bool stream) => route.Kind switch
    {
        "chat" => $$"""{"model":{{modelJson}},"messages":[{"role":"user","content":"Hello there"}],"max_tokens":8{{(stream ? ",\"stream\":true" : "")}}}""",
        "completions" => $$"""{"model":{{modelJson}},"prompt":"Hello there","max_tokens":8{{(stream ? ",\"stream\":true" : "")}}}""",
        "embeddings" => $$"""{"model":{{modelJson}},"input":"Hello there"}""",
        "responses" => $$"""{"model":{{modelJson}},"input":"Hello there","max_output_tokens":8{{(stream ? ",\"stream\":true" : "")}}}""",
        "messages" => $$"""{"model":{{modelJson}},"max_tokens":8,"messages":[{"role":"user","content":"Hello there"}]{{(stream ? ",\"stream\":true" : "")}}}""",
        "count_tokens" => $$"""{"model":{{modelJson}},"messages":[{"role":"user","content":"Hello there"}]}""",
        _ => "",
    };

    public static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s);

    /// <summary>A random mutation of a valid body: truncation, flipped/inserted/deleted bytes, junk, wrong roots, comments.</summary>
    public static (byte[] Body, string What) Malformed(byte[] valid, Random r)
    {
        switch (r.Next(12))
        {
            case 0:
                var cut = r.Next(valid.Length);
                return (valid[..cut], $"truncated at {cut}");
            case 1:
            {
                var b = (byte[])valid.Clone();
                var flips = 1 + r.Next(4);
                for (var i = 0; i < flips; i++) b[r.Next(b.Length)] = (byte)r.Next(0x20, 0x7F);
                return (b, $"{flips} bytes replaced");
            }
            case 2:
            {
                var at = r.Next(valid.Length);
                var c = "{}[],:\"\\"[r.Next(8)];
                return ([.. valid[..at], (byte)c, .. valid[at..]], $"'{c}' inserted at {at}");
            }
            case 3:
            {
                var at = r.Next(valid.Length);
                var len = Math.Min(valid.Length - at, 1 + r.Next(10));
                return ([.. valid[..at], .. valid[(at + len)..]], $"{len} bytes deleted at {at}");
            }
            case 4:
            {
                var junk = new byte[1 + r.Next(512)];
                r.NextBytes(junk);
                for (var i = 0; i < junk.Length; i++) junk[i] = (byte)(junk[i] & 0x7F);
                return (junk, "ASCII junk");
            }
            case 5: return ([], "empty body");
            case 6: return ("   \r\n\t "u8.ToArray(), "whitespace only");
            case 7:
            {
                string[] roots = ["[]", "\"gpt-4o-mini\"", "123", "null", "true", "[{\"model\":\"gpt-4o-mini\"}]"];
                var root = roots[r.Next(roots.Length)];
                return (Encoding.UTF8.GetBytes(root), "root is " + root);
            }
            case 8: return ([.. valid, .. "{\"model\":\"gpt-4o\"}"u8], "a second object after the first");
            case 9: return ([.. "/* c */"u8, .. valid], "comment before the object");
            case 10: return ([0xEF, 0xBB, 0xBF, .. valid], "UTF-8 byte order mark");
            default:
            {
                string[] values = ["NaN", "Infinity", "-Infinity", "01", "+1", ".5", "1.", "0x10", "'single'", "undefined", "tru", "nul"];
                var v = values[r.Next(values.Length)];
                return (Encoding.UTF8.GetBytes("{\"model\":\"gpt-4o-mini\",\"max_tokens\":" + v + ",\"messages\":[]}"), "JSON-like value " + v);
            }
        }
    }

    /// <summary>Nesting of arrays or objects <paramref name="depth"/> deep inside a message, closed or not.</summary>
    public static (byte[] Body, string What) DeepNesting(string modelJson, Random r)
    {
        int[] depths = [63, 64, 200, 254, 255, 256, 257, 1_000, 10_000, 100_000];
        var depth = depths[r.Next(depths.Length)];
        var objects = r.Next(2) == 0;
        var closed = r.Next(4) != 0;
        var sb = new StringBuilder("{\"model\":").Append(modelJson).Append(",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":");
        for (var i = 0; i < depth; i++) sb.Append(objects ? "{\"a\":" : "[");
        sb.Append('1');
        if (closed) for (var i = 0; i < depth; i++) sb.Append(objects ? '}' : ']');
        sb.Append("}]}");
        return (Encoding.UTF8.GetBytes(sb.ToString()), $"{depth} nested {(objects ? "objects" : "arrays")}{(closed ? "" : ", unclosed")}");
    }

    public static (byte[] Body, string What) HugeNumbers(FuzzRoute route, string modelJson, Random r)
    {
        string[] numbers =
        [
            "1e308", "1e999", "-1", "0", "-0", "1.5", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
            "18446744073709551616", "4294967296", "2147483647", "2147483648", "1" + new string('0', 400), "1e-400", "0.0000001",
            "100000000", "1000000000000", "123456789012345678901234567890",
        ];
        var n = numbers[r.Next(numbers.Length)];
        var field = r.Next(6) switch
        {
            0 => "max_tokens",
            1 => "max_completion_tokens",
            2 => "max_output_tokens",
            3 => "temperature",
            4 => "stream",
            _ => "n",
        };
        var body = route.Kind switch
        {
            "embeddings" => $$"""{"model":{{modelJson}},"input":"hi","{{field}}":{{n}}}""",
            "responses" => $$"""{"model":{{modelJson}},"input":"hi","{{field}}":{{n}}}""",
            "completions" => $$"""{"model":{{modelJson}},"prompt":"hi","{{field}}":{{n}}}""",
            _ => $$"""{"model":{{modelJson}},"messages":[{"role":"user","content":"hi"}],"{{field}}":{{n}}}""",
        };
        return (Encoding.UTF8.GetBytes(body), $"{field}: {(n.Length > 40 ? n[..20] + "…" : n)}");
    }

    public static (byte[] Body, string What) HugeStrings(FuzzRoute route, string modelJson, Random r)
    {
        int[] sizes = [1_024, 65_536, 300_000, 900_000];
        var size = sizes[r.Next(sizes.Length)];
        var text = new string((char)('a' + r.Next(26)), size);
        return r.Next(4) switch
        {
            0 => (Encoding.UTF8.GetBytes($$"""{"model":"{{InventedModelMarker}}-{{text}}","max_tokens":8,"messages":[]}"""), $"model name of {size} chars"),
            1 => (Encoding.UTF8.GetBytes($$"""{"model":{{modelJson}},"{{text}}":1}"""), $"property name of {size} chars"),
            2 => (Encoding.UTF8.GetBytes(ManyProperties(modelJson, size / 16)), $"{size / 16} properties"),
            _ => (Encoding.UTF8.GetBytes(Valid(route, modelJson, false).Replace("Hello there", text, StringComparison.Ordinal)), $"content of {size} chars"),
        };
    }

    private static string ManyProperties(string modelJson, int count)
    {
        var sb = new StringBuilder("{\"model\":").Append(modelJson).Append(",\"max_tokens\":8,\"messages\":[]");
        for (var i = 0; i < count; i++) sb.Append(",\"p").Append(i).Append("\":").Append(i);
        return sb.Append('}').ToString();
    }

    /// <summary>Invalid UTF-8 bytes, or JSON escapes that decode to lone surrogates or NUL, in the model or the content.</summary>
    public static (byte[] Body, string What) InvalidUtf8(FuzzRoute route, string model, Random r)
    {
        byte[][] raw = [[0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC3]];
        string[] escapes = ["\\ud800", "\\udc00", "\\ud800\\u0041", "\\udbff\\udbff", "\\u0000", "\\ud83d", "\\uDFFF\\uD800"];
        var inModel = r.Next(2) == 0;
        if (r.Next(2) == 0)
        {
            var bad = raw[r.Next(raw.Length)];
            var valid = Encoding.UTF8.GetBytes(Valid(route, Quote(model), false));
            var marker = inModel ? Encoding.UTF8.GetBytes(model) : "Hello"u8.ToArray();
            var at = valid.AsSpan().IndexOf(marker);
            if (at < 0) at = valid.Length / 2;
            return ([.. valid[..at], .. bad, .. valid[at..]], $"bytes {Convert.ToHexString(bad)} in the {(inModel ? "model" : "content")}");
        }
        var esc = escapes[r.Next(escapes.Length)];
        var body = inModel
            ? Valid(route, "\"" + model + esc + "\"", false)
            : Valid(route, Quote(model), false).Replace("Hello there", "Hello" + esc, StringComparison.Ordinal);
        return (Encoding.UTF8.GetBytes(body), $"escape {esc} in the {(inModel ? "model" : "content")}");
    }

    public static (byte[] Body, string What) DuplicateKeys(FuzzRoute route, string model, Random r)
    {
        var valid = Valid(route, Quote(model), r.Next(2) == 0);
        var inner = valid[1..];
        string[] extras =
        [
            "\"model\":\"gpt-4o\",", "\"model\":\"fzm-dup\",", "\"model\":123,", "\"\\u006dodel\":\"gpt-4o\",", "\"stream\":false,", "\"stream\":true,",
            "\"max_tokens\":1,", "\"max_tokens\":100000,", "\"max_tokens\":\"x\",", "\"stream_options\":{\"include_usage\":false},", "\"stream_options\":null,",
        ];
        var extra = extras[r.Next(extras.Length)];
        // Before or after the valid members: parsers that keep the first and the last occurrence disagree.
        var body = r.Next(2) == 0 ? "{" + extra + inner : valid[..^1] + "," + extra.TrimEnd(',') + "}";
        return (Encoding.UTF8.GetBytes(body), "duplicate " + extra.TrimEnd(','));
    }
}
