using System.Globalization;

namespace Gateway.Core.Redis.Cluster;

internal enum RedirectionKind : byte
{
    Moved,
    Ask,
    TryAgain,
}

/// <summary>A Redis Cluster redirection error: <c>MOVED slot host:port</c>, <c>ASK slot host:port</c> or <c>TRYAGAIN ...</c>.</summary>
internal readonly record struct Redirection(RedirectionKind Kind, int Slot, NodeAddress? Target)
{
    /// <summary>Recognises a redirection; an empty host in it means the node that answered (<paramref name="answeringHost"/>).</summary>
    public static bool TryParse(RedisServerException error, string answeringHost, out Redirection redirection)
    {
        redirection = default;
        if (error.HasPrefix("TRYAGAIN"))
        {
            redirection = new Redirection(RedirectionKind.TryAgain, -1, null);
            return true;
        }
        RedirectionKind kind;
        if (error.HasPrefix("MOVED")) kind = RedirectionKind.Moved;
        else if (error.HasPrefix("ASK")) kind = RedirectionKind.Ask;
        else return false;
        var parts = error.Message.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 3
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var slot)
            || slot >= RedisKeySlot.Count
            || !NodeAddress.TryParse(parts[2], answeringHost, out var target))
        {
            return false;
        }
        redirection = new Redirection(kind, slot, target);
        return true;
    }
}
