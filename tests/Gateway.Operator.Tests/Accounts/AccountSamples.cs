using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Operator.Sources;
using Gateway.Testing;

namespace Gateway.Operator.Tests.Accounts;

/// <summary>The made-up auth files under Accounts/samples and what the tests expect of them.</summary>
public static class AccountSamples
{
    public static string Folder => Path.Combine(RepoPaths.Root, "tests", "Gateway.Operator.Tests", "Accounts", "samples");

    /// <summary>The accounts the samples hold after the alice pair is merged: name → expected token expiry.</summary>
    public static readonly IReadOnlyDictionary<string, DateTimeOffset> Expected = new Dictionary<string, DateTimeOffset>
    {
        ["codex-alice-example-com"] = new(2099, 12, 31, 0, 0, 0, TimeSpan.Zero),
        ["codex-bob-example-com"] = new(2100, 1, 1, 0, 0, 0, TimeSpan.Zero),
        ["claude-carol-example-com"] = new(2099, 12, 30, 12, 0, 0, TimeSpan.Zero),
    };

    public const string AliceNewAccessToken = "FAKE-codex-access-alice-NEW-0001";
    public const string AliceOldAccessToken = "FAKE-codex-access-alice-OLD-0000";

    /// <summary>A fresh temporary copy of the samples (tests may add files to it).</summary>
    public static string CopyTo(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Folder, "*.json")) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), overwrite: true);
        return dir;
    }

    /// <summary>Every token value in the sample files (access, refresh and id tokens, nested or not).</summary>
    public static IReadOnlyList<string> AllTokens()
    {
        var tokens = new List<string>();
        foreach (var f in Directory.GetFiles(Folder, "*.json")) Collect(JsonNode.Parse(File.ReadAllText(f)), tokens);
        Assert.True(tokens.Count >= 10, "the samples should hold tokens");
        return tokens;
    }

    private static void Collect(JsonNode? node, List<string> into)
    {
        if (node is not JsonObject o) return;
        foreach (var (k, v) in o)
        {
            if (k.EndsWith("_token", StringComparison.Ordinal) && v is JsonValue val && val.GetValueKind() == JsonValueKind.String && val.GetValue<string>().Length > 0) into.Add(val.GetValue<string>());
            Collect(v, into);
        }
    }

    /// <summary>
    /// <paramref name="text"/> plus the decoded data of every Secret in it (when it is YAML), so a check for
    /// tokens also sees the ones inside base64 Secret data.
    /// </summary>
    public static string Revealed(string text)
    {
        var sb = new StringBuilder(text);
        try
        {
            foreach (var doc in YamlDocuments.Parse(text, "output"))
            {
                if (doc["data"] is not JsonObject data) continue;
                foreach (var (_, v) in data) sb.Append('\n').Append(Encoding.UTF8.GetString(Convert.FromBase64String(v!.GetValue<string>())));
            }
        }
        catch (InvalidDataException)
        {
            // Not YAML (e.g. "wrote …" lines): the text itself is all there is.
        }
        return sb.ToString();
    }

    public static void AssertNoToken(string text, string where)
    {
        var revealed = Revealed(text);
        foreach (var t in AllTokens()) Assert.False(revealed.Contains(t, StringComparison.Ordinal), $"{where} holds a token from the samples");
    }
}
