using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Gateway.Testing.Kubernetes;

/// <summary>
/// Enough of CEL to evaluate CRD validation rules (x-kubernetes-validations) the way the API server does:
/// literals, <c>self</c> and field selection, <c>has()</c>, <c>! - * / % + == != &lt; &lt;= &gt; &gt;= in &amp;&amp; || ?:</c>,
/// lists, <c>size</c>, the string functions <c>startsWith endsWith contains matches</c> and the macros
/// <c>all exists exists_one map filter</c>. Transition rules (<c>oldSelf</c>) are not evaluated. An expression
/// outside the subset throws <see cref="FormatException"/>, so a new rule the fake cannot check fails loudly.
/// </summary>
public static class FakeCel
{
    /// <summary>Evaluates <paramref name="rule"/> with <c>self</c> bound to <paramref name="self"/>.</summary>
    public static bool Evaluate(string rule, JsonNode? self)
    {
        var parser = new Parser(rule);
        var ast = parser.ParseExpression();
        parser.ExpectEnd();
        return Eval(ast, new Dictionary<string, object?>(StringComparer.Ordinal) { ["self"] = From(self) }) is true;
    }

    private abstract record Node;
    private sealed record Literal(object? Value) : Node;
    private sealed record Ident(string Name) : Node;
    private sealed record Select(Node Operand, string Field) : Node;
    private sealed record Index(Node Operand, Node Key) : Node;
    private sealed record Call(Node? Target, string Function, IReadOnlyList<Node> Args) : Node;
    private sealed record Unary(string Op, Node Operand) : Node;
    private sealed record Binary(string Op, Node Left, Node Right) : Node;
    private sealed record Conditional(Node Test, Node Then, Node Else) : Node;
    private sealed record ListNode(IReadOnlyList<Node> Items) : Node;

    // ------------------------------------------------------------------ evaluation

    private static object? Eval(Node node, Dictionary<string, object?> scope) => node switch
    {
        Literal l => l.Value,
        Ident i => scope.TryGetValue(i.Name, out var v) ? v : throw new FormatException($"undeclared reference to '{i.Name}'"),
        Select s => Eval(s.Operand, scope) is Dictionary<string, object?> map
            ? map.TryGetValue(s.Field, out var f) ? f : throw new InvalidOperationException($"no such key: {s.Field}")
            : throw new InvalidOperationException($"no such key: {s.Field}"),
        Index x => (Eval(x.Operand, scope), Eval(x.Key, scope)) switch
        {
            (List<object?> list, long i) when i >= 0 && i < list.Count => list[(int)i],
            (Dictionary<string, object?> map, string k) when map.TryGetValue(k, out var f) => f,
            _ => throw new InvalidOperationException("index out of range or no such key"),
        },
        Unary { Op: "!" } u => Eval(u.Operand, scope) is bool b ? !b : throw new InvalidOperationException("no such overload: !"),
        Unary { Op: "-" } u => Eval(u.Operand, scope) switch { long l => -l, double d => -d, _ => throw new InvalidOperationException("no such overload: -") },
        Binary { Op: "||" } b => Eval(b.Left, scope) is true || Eval(b.Right, scope) is true,
        Binary { Op: "&&" } b => Eval(b.Left, scope) is true && Eval(b.Right, scope) is true,
        Binary b => Apply(b.Op, Eval(b.Left, scope), Eval(b.Right, scope)),
        Conditional c => Eval(c.Test, scope) is true ? Eval(c.Then, scope) : Eval(c.Else, scope),
        ListNode l => l.Items.Select(i => Eval(i, scope)).ToList(),
        Call c => Invoke(c, scope),
        _ => throw new FormatException("unsupported expression"),
    };

    private static object? Invoke(Call c, Dictionary<string, object?> scope)
    {
        if (c.Target is null && c.Function == "has")
        {
            if (c.Args is not [Select s]) throw new FormatException("has() needs a field selection");
            return Eval(s.Operand, scope) is Dictionary<string, object?> map && map.ContainsKey(s.Field);
        }
        if (c.Target is not null && c.Function is "all" or "exists" or "exists_one" or "map" or "filter")
        {
            if (c.Args is not [Ident variable, var body]) throw new FormatException($"{c.Function}() needs a variable and an expression");
            var items = Eval(c.Target, scope) switch
            {
                List<object?> list => list,
                Dictionary<string, object?> map => map.Keys.Cast<object?>().ToList(),
                _ => throw new InvalidOperationException($"no such overload: {c.Function}"),
            };
            var inner = new Dictionary<string, object?>(scope, StringComparer.Ordinal);
            object? Run(object? item)
            {
                inner[variable.Name] = item;
                return Eval(body, inner);
            }
            return c.Function switch
            {
                "all" => items.All(i => Run(i) is true),
                "exists" => items.Any(i => Run(i) is true),
                "exists_one" => items.Count(i => Run(i) is true) == 1,
                "map" => items.Select(Run).ToList(),
                _ => items.Where(i => Run(i) is true).ToList(),
            };
        }
        var args = c.Args.Select(a => Eval(a, scope)).ToList();
        if (c.Target is not null) args.Insert(0, Eval(c.Target, scope));
        return (c.Function, args) switch
        {
            ("size", [string s]) => (long)s.EnumerateRunes().Count(),
            ("size", [List<object?> l]) => (long)l.Count,
            ("size", [Dictionary<string, object?> m]) => (long)m.Count,
            ("startsWith", [string s, string p]) => s.StartsWith(p, StringComparison.Ordinal),
            ("endsWith", [string s, string p]) => s.EndsWith(p, StringComparison.Ordinal),
            ("contains", [string s, string p]) => s.Contains(p, StringComparison.Ordinal),
            ("matches", [string s, string p]) => Regex.IsMatch(s, p, RegexOptions.None, TimeSpan.FromSeconds(1)),
            _ => throw new FormatException($"unsupported function {c.Function}"),
        };
    }

    private static object? Apply(string op, object? l, object? r)
    {
        switch (op)
        {
            case "==": return Same(l, r);
            case "!=": return !Same(l, r);
            case "in":
                return r switch
                {
                    List<object?> list => list.Any(i => Same(i, l)),
                    Dictionary<string, object?> map => l is string k && map.ContainsKey(k),
                    _ => throw new InvalidOperationException("no such overload: in"),
                };
        }
        if (op == "+" && l is string ls && r is string rs) return ls + rs;
        if (op == "+" && l is List<object?> ll && r is List<object?> rl) return ll.Concat(rl).ToList();
        if (op is "<" or "<=" or ">" or ">=" && l is string a && r is string b)
        {
            var c = string.CompareOrdinal(a, b);
            return op switch { "<" => c < 0, "<=" => c <= 0, ">" => c > 0, _ => c >= 0 };
        }
        if (l is long x && r is long y)
        {
            return op switch
            {
                "+" => x + y, "-" => x - y, "*" => x * y,
                "/" => y == 0 ? throw new InvalidOperationException("division by zero") : x / y,
                "%" => y == 0 ? throw new InvalidOperationException("modulus by zero") : x % y,
                "<" => x < y, "<=" => x <= y, ">" => x > y, ">=" => x >= y,
                _ => throw new FormatException("unsupported operator " + op),
            };
        }
        if (l is double or long && r is double or long)
        {
            var (p, q) = (Convert.ToDouble(l, CultureInfo.InvariantCulture), Convert.ToDouble(r, CultureInfo.InvariantCulture));
            return op switch
            {
                "+" => p + q, "-" => p - q, "*" => p * q, "/" => p / q,
                "<" => p < q, "<=" => p <= q, ">" => p > q, ">=" => p >= q,
                _ => throw new FormatException("unsupported operator " + op),
            };
        }
        throw new InvalidOperationException($"no such overload: {op}");
    }

    private static bool Same(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Same(p.First, p.Second)),
        (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(p => y.TryGetValue(p.Key, out var v) && Same(p.Value, v)),
        _ => Equals(a, b),
    };

    private static object? From(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(p => p.Key, p => From(p.Value), StringComparer.Ordinal),
        JsonArray a => a.Select(From).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => v.GetValue<JsonElement>().TryGetInt64(out var l) ? l : v.GetValue<JsonElement>().GetDouble(),
            _ => null,
        },
        _ => throw new FormatException("unsupported JSON node"),
    };

    // ------------------------------------------------------------------ parsing

    private sealed class Parser(string text)
    {
        private static readonly string[] Symbols = ["&&", "||", "==", "!=", "<=", ">=", "!", "<", ">", "+", "-", "*", "/", "%", "?", ":", "(", ")", "[", "]", ",", "."];
        private int _pos;

        public void ExpectEnd()
        {
            SkipSpace();
            if (_pos < text.Length) throw new FormatException($"unexpected '{text[_pos..]}' in rule '{text}'");
        }

        public Node ParseExpression()
        {
            var test = ParseBinary(0);
            if (!Accept("?")) return test;
            var then = ParseExpression();
            Expect(":");
            return new Conditional(test, then, ParseExpression());
        }

        private static readonly string[][] Levels = [["||"], ["&&"], ["==", "!=", "<", "<=", ">", ">=", "in"], ["+", "-"], ["*", "/", "%"]];

        private Node ParseBinary(int level)
        {
            if (level == Levels.Length) return ParseUnary();
            var left = ParseBinary(level + 1);
            while (Levels[level].FirstOrDefault(Peek) is { } op)
            {
                Accept(op);
                left = new Binary(op, left, ParseBinary(level + 1));
            }
            return left;
        }

        private Node ParseUnary()
        {
            if (Accept("!")) return new Unary("!", ParseUnary());
            if (Accept("-")) return new Unary("-", ParseUnary());
            return ParseMember();
        }

        private Node ParseMember()
        {
            var node = ParsePrimary();
            while (true)
            {
                if (Accept("."))
                {
                    var name = Identifier();
                    node = Accept("(") ? new Call(node, name, Arguments(")")) : new Select(node, name);
                }
                else if (Accept("["))
                {
                    var key = ParseExpression();
                    Expect("]");
                    node = new Index(node, key);
                }
                else return node;
            }
        }

        private Node ParsePrimary()
        {
            SkipSpace();
            if (_pos >= text.Length) throw new FormatException($"unexpected end of rule '{text}'");
            var c = text[_pos];
            if (Accept("(")) { var e = ParseExpression(); Expect(")"); return e; }
            if (Accept("[")) return new ListNode(Arguments("]"));
            if (c is '\'' or '"') return new Literal(StringLiteral(c));
            if (char.IsDigit(c)) return new Literal(Number());
            var name = Identifier();
            return name switch
            {
                "true" => new Literal(true),
                "false" => new Literal(false),
                "null" => new Literal(null),
                "oldSelf" => throw new FormatException("transition rules (oldSelf) are not evaluated by the fake"),
                _ when Accept("(") => new Call(null, name, Arguments(")")),
                _ => new Ident(name),
            };
        }

        private List<Node> Arguments(string close)
        {
            var args = new List<Node>();
            if (Accept(close)) return args;
            do args.Add(ParseExpression()); while (Accept(","));
            Expect(close);
            return args;
        }

        private string StringLiteral(char quote)
        {
            var sb = new System.Text.StringBuilder();
            _pos++;
            while (_pos < text.Length && text[_pos] != quote)
            {
                if (text[_pos] == '\\' && _pos + 1 < text.Length) _pos++;
                sb.Append(text[_pos++]);
            }
            if (_pos >= text.Length) throw new FormatException($"unterminated string in rule '{text}'");
            _pos++;
            return sb.ToString();
        }

        private object Number()
        {
            var start = _pos;
            while (_pos < text.Length && (char.IsDigit(text[_pos]) || text[_pos] == '.')) _pos++;
            var s = text[start.._pos];
            if (_pos < text.Length && text[_pos] == 'u') _pos++;
            return s.Contains('.', StringComparison.Ordinal) ? double.Parse(s, CultureInfo.InvariantCulture) : long.Parse(s, CultureInfo.InvariantCulture);
        }

        private string Identifier()
        {
            SkipSpace();
            var start = _pos;
            while (_pos < text.Length && (char.IsLetterOrDigit(text[_pos]) || text[_pos] == '_')) _pos++;
            if (start == _pos) throw new FormatException($"expected a name at '{text[start..]}' in rule '{text}'");
            return text[start.._pos];
        }

        private bool Peek(string symbol)
        {
            SkipSpace();
            if (!text.AsSpan(_pos).StartsWith(symbol, StringComparison.Ordinal)) return false;
            var end = _pos + symbol.Length;
            // "in" is a keyword only as a whole word; "<" must not be the start of "<=", "!" of "!=".
            if (char.IsLetter(symbol[0])) return end >= text.Length || !(char.IsLetterOrDigit(text[end]) || text[end] == '_');
            return !Symbols.Any(longer => longer.Length > symbol.Length && longer.StartsWith(symbol, StringComparison.Ordinal)
                && text.AsSpan(_pos).StartsWith(longer, StringComparison.Ordinal));
        }

        private bool Accept(string symbol)
        {
            if (!Peek(symbol)) return false;
            _pos += symbol.Length;
            return true;
        }

        private void Expect(string symbol)
        {
            if (!Accept(symbol)) throw new FormatException($"expected '{symbol}' at '{text[Math.Min(_pos, text.Length)..]}' in rule '{text}'");
        }

        private void SkipSpace()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
        }
    }
}
