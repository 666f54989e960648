namespace Gateway.Core.Redis;

/// <summary>One stream entry: its id and field/value pairs. A deleted entry still listed in a
/// consumer's pending history has no fields.</summary>
public sealed record StreamEntry(string Id, IReadOnlyDictionary<string, string> Fields);

/// <summary>Result of XAUTOCLAIM: the cursor for the next call ("0-0" when the scan is complete), the
/// entries now owned by the claiming consumer, and ids of pending entries that no longer exist (Redis
/// removed them from the pending list; acknowledge nothing for them).</summary>
public sealed record StreamAutoClaimResult(string NextStartId, IReadOnlyList<StreamEntry> Claimed, IReadOnlyList<string> DeletedIds);

/// <summary>XPENDING summary of a consumer group: pending (delivered, unacknowledged) entries in total
/// and per consumer, with the lowest and highest pending ids (null when nothing is pending).</summary>
public sealed record StreamPendingSummary(long Count, string? LowestId, string? HighestId, IReadOnlyDictionary<string, long> Consumers);

/// <summary>
/// Redis Streams commands used by the usage pipeline (proxy XADDs, ledger writer consumes with a group).
/// </summary>
/// <remarks>
/// A blocking read (<c>block</c> set) must run on a client from <see cref="RespClient.CreateDedicatedAsync"/>
/// (or <see cref="Cluster.RedisClusterClient.CreateDedicatedAsync"/>, <see cref="RedisClients.CreateDedicatedAsync"/>):
/// on the shared multiplexed connection it would hold up every other command until it returns, so a
/// shared <see cref="RespClient"/> rejects it with <see cref="InvalidOperationException"/>. The block
/// time is added to that command's timeout.
/// </remarks>
public static class RedisStreams
{
    /// <summary>XADD key [MAXLEN ~ n] * field value ...; returns the new entry id.</summary>
    /// <param name="fieldValues">Alternating field names and values (e.g. <c>UsageEvent.ToStreamFields()</c>).</param>
    /// <param name="approximateMaxLength">When set, trims the stream to about this many entries (MAXLEN ~), which
    /// Redis does cheaply in whole macro-nodes.</param>
    public static async Task<string> StreamAddAsync(
        this IRedisClient client,
        string key,
        IReadOnlyList<RedisArg> fieldValues,
        long? approximateMaxLength = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fieldValues);
        if (fieldValues.Count == 0 || fieldValues.Count % 2 != 0)
            throw new ArgumentException("XADD needs a non-empty list of field/value pairs.", nameof(fieldValues));
        var reply = approximateMaxLength is { } max
            ? await Execute(client, "XADD", [key, "MAXLEN", "~", max, "*"], fieldValues, TimeSpan.Zero, cancellationToken).ConfigureAwait(false)
            : await Execute(client, "XADD", [key, "*"], fieldValues, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        return reply.AsString()!;
    }

    /// <summary>XGROUP CREATE key group startId MKSTREAM. Returns false when the group already existed (BUSYGROUP).</summary>
    /// <param name="startId">"$" to deliver only new entries, "0" to deliver the whole stream.</param>
    public static async Task<bool> StreamCreateGroupAsync(
        this IRedisClient client, string key, string group, string startId = "$", CancellationToken cancellationToken = default)
    {
        try
        {
            await client.ExecuteAsync("XGROUP", ["CREATE", key, group, startId, "MKSTREAM"], cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RedisServerException e) when (e.HasPrefix("BUSYGROUP"))
        {
            return false;
        }
    }

    /// <summary>
    /// XREADGROUP GROUP group consumer COUNT count [BLOCK ms] STREAMS key id. Returns the entries read (empty
    /// when nothing arrived within <paramref name="block"/>).
    /// </summary>
    /// <param name="id">">" for entries never delivered to any consumer; "0" for this consumer's own
    /// pending (delivered, unacknowledged) entries, e.g. after a restart.</param>
    /// <param name="block">Wait up to this long for new entries; needs a dedicated client (see remarks).
    /// Must be positive: BLOCK 0 (forever) is not offered because it could never time out.</param>
    public static async Task<IReadOnlyList<StreamEntry>> StreamReadGroupAsync(
        this IRedisClient client,
        string key,
        string group,
        string consumer,
        int count,
        TimeSpan? block = null,
        string id = ">",
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        RespValue reply;
        if (block is { } wait)
        {
            var ms = (long)Math.Ceiling(wait.TotalMilliseconds);
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ms, nameof(block));
            if (client is RespClient { IsDedicated: false } or Cluster.RedisClusterClient { IsDedicated: false })
            {
                throw new InvalidOperationException(
                    "A blocking XREADGROUP would stall every command on the shared Redis connection; run it on a client from CreateDedicatedAsync.");
            }
            reply = await Execute(client, "XREADGROUP", ["GROUP", group, consumer, "COUNT", count, "BLOCK", ms, "STREAMS", key, id],
                null, wait, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            reply = await Execute(client, "XREADGROUP", ["GROUP", group, consumer, "COUNT", count, "STREAMS", key, id],
                null, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        }
        // Reply: nil on timeout, else [[key, [entry, ...]]] (one element per stream requested).
        if (reply.IsNull || reply.Items.Count == 0) return [];
        return ParseEntries(reply.Items[0].Items[1]);
    }

    /// <summary>XACK key group id...; returns how many entries were acknowledged.</summary>
    public static async Task<long> StreamAckAsync(
        this IRedisClient client, string key, string group, IReadOnlyList<string> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Count == 0) return 0;
        var args = new RedisArg[ids.Count];
        for (var i = 0; i < ids.Count; i++) args[i] = ids[i];
        var reply = await Execute(client, "XACK", [key, group], args, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        return reply.AsInt64();
    }

    /// <summary>
    /// XAUTOCLAIM key group consumer min-idle-time start COUNT count: moves entries pending for longer than
    /// <paramref name="minIdle"/> (e.g. delivered to a consumer that died) to <paramref name="consumer"/>.
    /// Call again with <see cref="StreamAutoClaimResult.NextStartId"/> until it is "0-0".
    /// </summary>
    public static async Task<StreamAutoClaimResult> StreamAutoClaimAsync(
        this IRedisClient client,
        string key,
        string group,
        string consumer,
        TimeSpan minIdle,
        string startId = "0-0",
        int count = 100,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(minIdle, TimeSpan.Zero);
        var reply = await client.ExecuteAsync(
            "XAUTOCLAIM", [key, group, consumer, (long)minIdle.TotalMilliseconds, startId, "COUNT", count], cancellationToken).ConfigureAwait(false);
        // Redis 7: [next-start, [entry, ...], [deleted-id, ...]]; Redis 6.2 has no third element.
        var items = reply.Items;
        var deleted = new List<string>();
        if (items.Count > 2)
        {
            foreach (var d in items[2].Items) deleted.Add(d.AsString()!);
        }
        return new StreamAutoClaimResult(items[0].AsString()!, ParseEntries(items[1]), deleted);
    }

    /// <summary>XPENDING key group (the summary form).</summary>
    public static async Task<StreamPendingSummary> StreamPendingAsync(
        this IRedisClient client, string key, string group, CancellationToken cancellationToken = default)
    {
        var reply = await client.ExecuteAsync("XPENDING", [key, group], cancellationToken).ConfigureAwait(false);
        // [count, lowest-id, highest-id, [[consumer, "count"], ...]]; ids and the list are nil when empty.
        var items = reply.Items;
        var consumers = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var pair in items[3].Items) consumers[pair.Items[0].AsString()!] = pair.Items[1].AsInt64();
        return new StreamPendingSummary(items[0].AsInt64(), items[1].AsString(), items[2].AsString(), consumers);
    }

    /// <summary>XLEN key.</summary>
    public static async Task<long> StreamLengthAsync(this IRedisClient client, string key, CancellationToken cancellationToken = default) =>
        (await client.ExecuteAsync("XLEN", [key], cancellationToken).ConfigureAwait(false)).AsInt64();

    private static List<StreamEntry> ParseEntries(RespValue list)
    {
        var entries = new List<StreamEntry>(list.Items.Count);
        foreach (var entry in list.Items)
        {
            // XAUTOCLAIM on Redis 6.2 lists a deleted entry as nil.
            if (entry.IsNull) continue;
            var id = entry.Items[0].AsString()!;
            var fieldValues = entry.Items.Count > 1 ? entry.Items[1].Items : [];
            var fields = new Dictionary<string, string>(fieldValues.Count / 2, StringComparer.Ordinal);
            for (var i = 0; i + 1 < fieldValues.Count; i += 2)
            {
                fields[fieldValues[i].AsString()!] = fieldValues[i + 1].AsString() ?? "";
            }
            entries.Add(new StreamEntry(id, fields));
        }
        return entries;
    }

    // Writes head and tail without concatenating them when the client is ours; also applies the extra
    // timeout of blocking reads.
    private static Task<RespValue> Execute(
        IRedisClient client, string command, ReadOnlySpan<RedisArg> head, IReadOnlyList<RedisArg>? tail, TimeSpan extraTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (client is RespClient resp) return resp.Send(command, head, tail, null, extraTimeout, cancellationToken);
        var args = new List<RedisArg>(head.Length + (tail?.Count ?? 0));
        foreach (var arg in head) args.Add(arg);
        if (tail is not null) args.AddRange(tail);
        if (client is Cluster.RedisClusterClient cluster) return cluster.ExecuteAsync(command, args, extraTimeout, cancellationToken);
        return client.ExecuteAsync(command, args, cancellationToken);
    }
}
