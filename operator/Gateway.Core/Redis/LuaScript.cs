using System.Security.Cryptography;
using System.Text;

namespace Gateway.Core.Redis;

/// <summary>A Lua script and its SHA1, for EVALSHA with NOSCRIPT fallback.</summary>
public sealed class LuaScript
{
    public LuaScript(string source)
    {
        Source = source;
        Sha1 = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(source)));
    }

    public string Source { get; }
    public string Sha1 { get; }
}
