using System.Collections.Frozen;
using System.Globalization;

namespace Gateway.Core.Redis.Cluster;

/// <summary>Which arguments of a command are keys: <paramref name="Count"/> of them from index
/// <paramref name="Start"/>, every <paramref name="Step"/>-th. <see cref="None"/> for keyless commands.</summary>
public readonly record struct KeyPositions(int Start, int Count, int Step)
{
    public static readonly KeyPositions None = new(0, 0, 1);

    public bool IsEmpty => Count == 0;
}

/// <summary>
/// Finds the key arguments of a command (arguments after the command name), so a cluster client can route it to
/// the node serving their slot and refuse keys of different slots before sending. Default: argument 0. Commands
/// not listed with a special shape whose extra keys sit elsewhere (ZUNIONSTORE, LMPOP, ...) are routed by their
/// first argument; the server still refuses them with CROSSSLOT when their keys span slots.
/// </summary>
public static class RedisCommandKeys
{
    /// <summary>The server's wording, so callers see the same error from the client and from Redis.</summary>
    public const string CrossSlotMessage = "CROSSSLOT Keys in request don't hash to the same slot";

    private enum Shape : byte
    {
        First,
        Keyless,
        All,
        AllButLast,
        FirstTwo,
        EveryOther,
        Second,
        Streams,
        Eval,
    }

    private static readonly FrozenDictionary<string, Shape> Shapes = new Dictionary<string, Shape>(StringComparer.OrdinalIgnoreCase)
    {
        // Keyless: any node; node-wide ones (FLUSHALL, DBSIZE, SCAN, KEYS, SCRIPT FLUSH) need ExecuteOnEachMasterAsync.
        ["PING"] = Shape.Keyless, ["TIME"] = Shape.Keyless, ["INFO"] = Shape.Keyless, ["PUBLISH"] = Shape.Keyless,
        ["SCRIPT"] = Shape.Keyless, ["CLUSTER"] = Shape.Keyless, ["CONFIG"] = Shape.Keyless, ["CLIENT"] = Shape.Keyless,
        ["DBSIZE"] = Shape.Keyless, ["FLUSHALL"] = Shape.Keyless, ["FLUSHDB"] = Shape.Keyless, ["SCAN"] = Shape.Keyless,
        ["KEYS"] = Shape.Keyless, ["ECHO"] = Shape.Keyless, ["HELLO"] = Shape.Keyless, ["AUTH"] = Shape.Keyless,
        ["SELECT"] = Shape.Keyless, ["ASKING"] = Shape.Keyless, ["READONLY"] = Shape.Keyless, ["READWRITE"] = Shape.Keyless,
        ["MEMORY"] = Shape.Keyless, ["SLOWLOG"] = Shape.Keyless, ["COMMAND"] = Shape.Keyless, ["LASTSAVE"] = Shape.Keyless,
        ["ROLE"] = Shape.Keyless, ["LATENCY"] = Shape.Keyless, ["FUNCTION"] = Shape.Keyless, ["PUBSUB"] = Shape.Keyless,
        ["RANDOMKEY"] = Shape.Keyless, ["WAIT"] = Shape.Keyless, ["ACL"] = Shape.Keyless, ["SAVE"] = Shape.Keyless,
        ["BGSAVE"] = Shape.Keyless, ["BGREWRITEAOF"] = Shape.Keyless, ["DEBUG"] = Shape.Keyless, ["QUIT"] = Shape.Keyless,
        ["MULTI"] = Shape.Keyless, ["EXEC"] = Shape.Keyless, ["DISCARD"] = Shape.Keyless, ["UNWATCH"] = Shape.Keyless,

        ["MGET"] = Shape.All, ["DEL"] = Shape.All, ["UNLINK"] = Shape.All, ["EXISTS"] = Shape.All, ["TOUCH"] = Shape.All,
        ["WATCH"] = Shape.All, ["SINTER"] = Shape.All, ["SUNION"] = Shape.All, ["SDIFF"] = Shape.All,
        ["SINTERSTORE"] = Shape.All, ["SUNIONSTORE"] = Shape.All, ["SDIFFSTORE"] = Shape.All,
        ["PFCOUNT"] = Shape.All, ["PFMERGE"] = Shape.All,
        ["BLPOP"] = Shape.AllButLast, ["BRPOP"] = Shape.AllButLast, ["BZPOPMIN"] = Shape.AllButLast, ["BZPOPMAX"] = Shape.AllButLast,
        ["RENAME"] = Shape.FirstTwo, ["RENAMENX"] = Shape.FirstTwo, ["RPOPLPUSH"] = Shape.FirstTwo, ["BRPOPLPUSH"] = Shape.FirstTwo,
        ["LMOVE"] = Shape.FirstTwo, ["BLMOVE"] = Shape.FirstTwo, ["SMOVE"] = Shape.FirstTwo, ["COPY"] = Shape.FirstTwo,
        ["MSET"] = Shape.EveryOther, ["MSETNX"] = Shape.EveryOther,
        ["XGROUP"] = Shape.Second, ["XINFO"] = Shape.Second, ["OBJECT"] = Shape.Second,
        ["XREAD"] = Shape.Streams, ["XREADGROUP"] = Shape.Streams,
        ["EVAL"] = Shape.Eval, ["EVALSHA"] = Shape.Eval, ["EVAL_RO"] = Shape.Eval, ["EVALSHA_RO"] = Shape.Eval,
        ["FCALL"] = Shape.Eval, ["FCALL_RO"] = Shape.Eval,
    }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    /// <summary>True for commands without keys (PING, TIME, PUBLISH, SCRIPT, FLUSHALL, ...).</summary>
    public static bool IsKeyless(string command) => Shapes.TryGetValue(command, out var shape) && shape == Shape.Keyless;

    /// <summary>The key arguments of <paramref name="command"/> among <paramref name="args"/>.</summary>
    public static KeyPositions Find(string command, IReadOnlyList<RedisArg> args)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(args);
        var n = args.Count;
        if (n == 0) return KeyPositions.None;
        var shape = Shapes.TryGetValue(command, out var s) ? s : Shape.First;
        return shape switch
        {
            Shape.Keyless => KeyPositions.None,
            Shape.First => new(0, 1, 1),
            Shape.All => new(0, n, 1),
            Shape.AllButLast => new(0, n - 1, 1),
            Shape.FirstTwo => new(0, Math.Min(2, n), 1),
            Shape.EveryOther => new(0, (n + 1) / 2, 2),
            Shape.Second => n >= 2 ? new(1, 1, 1) : KeyPositions.None,
            Shape.Streams => FindStreams(args),
            Shape.Eval => FindEvalKeys(args),
            _ => KeyPositions.None,
        };
    }

    /// <summary>The slot of the command's keys, or -1 for a keyless command.</summary>
    /// <exception cref="RedisServerException">CROSSSLOT: the keys are in different slots (nothing was sent).</exception>
    public static int SlotOf(string command, IReadOnlyList<RedisArg> args)
    {
        var keys = Find(command, args);
        var slot = -1;
        for (var i = 0; i < keys.Count; i++)
        {
            var s = RedisKeySlot.Of(args[keys.Start + (i * keys.Step)]);
            if (slot >= 0 && s != slot) throw new RedisServerException(CrossSlotMessage);
            slot = s;
        }
        return slot;
    }

    /// <summary>The slot shared by <paramref name="keys"/> (e.g. a script's KEYS), or -1 when there are none.</summary>
    /// <exception cref="RedisServerException">CROSSSLOT: the keys are in different slots.</exception>
    public static int SlotOfKeys(IReadOnlyList<RedisArg> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var slot = -1;
        for (var i = 0; i < keys.Count; i++)
        {
            var s = RedisKeySlot.Of(keys[i]);
            if (slot >= 0 && s != slot) throw new RedisServerException(CrossSlotMessage);
            slot = s;
        }
        return slot;
    }

    // XREAD [COUNT n] [BLOCK ms] STREAMS key1 key2 id1 id2: the first half after STREAMS.
    private static KeyPositions FindStreams(IReadOnlyList<RedisArg> args)
    {
        for (var i = 0; i < args.Count; i++)
        {
            if (!string.Equals(args[i].ToString(), "STREAMS", StringComparison.OrdinalIgnoreCase)) continue;
            var rest = args.Count - i - 1;
            return rest >= 2 ? new(i + 1, rest / 2, 1) : KeyPositions.None;
        }
        return KeyPositions.None;
    }

    // EVAL script numkeys key... arg...
    private static KeyPositions FindEvalKeys(IReadOnlyList<RedisArg> args)
    {
        if (args.Count < 2 || !int.TryParse(args[1].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var numKeys)) return KeyPositions.None;
        return new(2, Math.Min(numKeys, args.Count - 2), 1);
    }
}
