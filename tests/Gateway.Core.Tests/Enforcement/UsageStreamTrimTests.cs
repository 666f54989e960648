using Gateway.Core.Enforcement;
using Gateway.Core.Projection;
using Gateway.Core.Redis;

namespace Gateway.Core.Tests.Enforcement;

public sealed class UsageStreamTrimTests : IAsyncLifetime
{
    private EnforcementTestContext _t = null!;

    public async Task InitializeAsync() => _t = await EnforcementTestContext.CreateAsync();

    public async Task DisposeAsync() => await _t.DisposeAsync();

    private async Task<List<string>> AddAsync(int count)
    {
        var ids = new List<string>();
        for (var i = 0; i < count; i++) ids.Add(await _t.Redis.StreamAddAsync(_t.Keys.UsageStream(0), ["n", i]));
        return ids;
    }

    private async Task<long> LengthAsync() => await _t.Redis.StreamLengthAsync(_t.Keys.UsageStream(0));

    private Task<long> TrimAsync() => UsageStreamTrim.TrimAcknowledgedAsync(_t.Redis, _t.Keys);

    [Fact]
    public async Task Removes_only_entries_every_group_acknowledged()
    {
        var ids = await AddAsync(6);
        await _t.Redis.StreamCreateGroupAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, "0");
        var read = await _t.Redis.StreamReadGroupAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, "writer-1", 4);
        Assert.Equal(4, read.Count);

        // Nothing acknowledged: nothing goes.
        Assert.Equal(0, await TrimAsync());

        // Acknowledge 1, 2 and 4; 3 is still pending, so only 1 and 2 go.
        await _t.Redis.StreamAckAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, [ids[0], ids[1], ids[3]]);
        Assert.Equal(2, await TrimAsync());
        Assert.Equal(4, await LengthAsync());

        // Everything delivered is acknowledged: up to the last delivered entry goes; undelivered 5 and 6 stay.
        await _t.Redis.StreamAckAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, [ids[2]]);
        Assert.Equal(2, await TrimAsync());
        Assert.Equal(2, await LengthAsync());
        var rest = await _t.Redis.StreamReadGroupAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, "writer-1", 10);
        Assert.Equal([ids[4], ids[5]], rest.Select(e => e.Id));
    }

    [Fact]
    public async Task The_slowest_group_bounds_the_trim()
    {
        var ids = await AddAsync(3);
        await _t.Redis.StreamCreateGroupAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, "0");
        await _t.Redis.StreamCreateGroupAsync(_t.Keys.UsageStream(0), "audit", "0");
        await _t.Redis.StreamReadGroupAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, "w", 3);
        await _t.Redis.StreamAckAsync(_t.Keys.UsageStream(0), ProjectionKeys.UsageGroup, ids);
        await _t.Redis.StreamReadGroupAsync(_t.Keys.UsageStream(0), "audit", "w", 1);
        await _t.Redis.StreamAckAsync(_t.Keys.UsageStream(0), "audit", [ids[0]]);

        Assert.Equal(1, await TrimAsync());
        Assert.Equal(2, await LengthAsync());
    }

    [Fact]
    public async Task A_stream_without_consumer_groups_or_no_stream_is_left_alone()
    {
        Assert.Equal(0, await TrimAsync());
        await AddAsync(3);
        Assert.Equal(0, await TrimAsync());
        Assert.Equal(3, await LengthAsync());
    }
}
