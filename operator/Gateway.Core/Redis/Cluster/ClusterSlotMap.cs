using System.Globalization;

namespace Gateway.Core.Redis.Cluster;

/// <summary>The address of one Redis Cluster node as the cluster announces it.</summary>
internal sealed record NodeAddress(string Host, int Port)
{
    /// <summary>"host:port" ("[v6]:port" for IPv6), as in <see cref="RespClientOptions.EndPoint"/>.</summary>
    public string EndPoint { get; } = Host.Contains(':', StringComparison.Ordinal)
        ? "[" + Host + "]:" + Port.ToString(CultureInfo.InvariantCulture)
        : Host + ":" + Port.ToString(CultureInfo.InvariantCulture);

    public override string ToString() => EndPoint;

    /// <summary>Parses the "host:port" of a MOVED/ASK error or CLUSTER reply; an empty host means
    /// "the node that answered" (<paramref name="fallbackHost"/>).</summary>
    public static bool TryParse(string text, string fallbackHost, out NodeAddress address)
    {
        address = null!;
        var colon = text.LastIndexOf(':');
        if (colon < 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            return false;
        var host = text[..colon].Trim('[', ']');
        address = new NodeAddress(host.Length == 0 ? fallbackHost : host, port);
        return true;
    }
}

/// <summary>
/// Which master serves each of the 16384 slots. Built from <c>CLUSTER SLOTS</c>; a MOVED redirection updates
/// one slot in place (reference writes are atomic, and a reader seeing the old owner is merely redirected
/// once more), a refresh replaces the whole map.
/// </summary>
internal sealed class ClusterSlotMap
{
    private readonly NodeAddress?[] _owners;

    private ClusterSlotMap(NodeAddress?[] owners, IReadOnlyList<NodeAddress> masters)
    {
        _owners = owners;
        Masters = masters;
    }

    /// <summary>The masters serving at least one slot, in the order CLUSTER SLOTS listed them.</summary>
    public IReadOnlyList<NodeAddress> Masters { get; }

    /// <summary>The master serving <paramref name="slot"/>, or null when no node serves it.</summary>
    public NodeAddress? OwnerOf(int slot) => Volatile.Read(ref _owners[slot]);

    /// <summary>Records a MOVED redirection: <paramref name="slot"/> is now served by <paramref name="owner"/>.</summary>
    public void Update(int slot, NodeAddress owner) => Volatile.Write(ref _owners[slot], owner);

    /// <summary>
    /// Parses a <c>CLUSTER SLOTS</c> reply: <c>[[start, end, [host, port, id, ...], replica...], ...]</c>. A master
    /// announced with an empty or unknown ("?") host is reached at <paramref name="answeringHost"/>, the host that
    /// answered (Redis leaves the host empty when it does not know its own address).
    /// </summary>
    public static ClusterSlotMap Parse(RespValue reply, string answeringHost)
    {
        var owners = new NodeAddress?[RedisKeySlot.Count];
        var masters = new List<NodeAddress>();
        var byEndPoint = new Dictionary<string, NodeAddress>(StringComparer.Ordinal);
        foreach (var range in reply.Items)
        {
            var items = range.Items;
            if (items.Count < 3) throw new RedisConnectionException("Redis Cluster answered CLUSTER SLOTS with an unexpected shape.");
            var start = (int)items[0].AsInt64();
            var end = (int)items[1].AsInt64();
            var node = items[2].Items;
            var host = node[0].AsString() ?? "";
            if (host is "" or "?") host = answeringHost;
            var address = new NodeAddress(host, (int)node[1].AsInt64());
            if (byEndPoint.TryGetValue(address.EndPoint, out var known)) address = known;
            else
            {
                byEndPoint.Add(address.EndPoint, address);
                masters.Add(address);
            }
            if (start < 0 || end >= RedisKeySlot.Count || start > end)
                throw new RedisConnectionException("Redis Cluster answered CLUSTER SLOTS with a slot range out of bounds.");
            for (var slot = start; slot <= end; slot++) owners[slot] = address;
        }
        if (masters.Count == 0) throw new RedisConnectionException("Redis Cluster serves no slots yet (CLUSTER SLOTS is empty).");
        return new ClusterSlotMap(owners, masters);
    }
}
