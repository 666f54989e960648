using Gateway.Core.Redis;

namespace Gateway.Core.Tests.Redis;

public sealed class RespClientOptionsTests
{
    [Fact]
    public void Parses_host_and_port_with_defaults()
    {
        var options = RespClientOptions.Parse("127.0.0.1:56379");

        Assert.Equal("127.0.0.1", options.Host);
        Assert.Equal(56379, options.Port);
        Assert.Null(options.Password);
        Assert.Equal(0, options.Database);
        Assert.Equal(TimeSpan.FromSeconds(5), options.CommandTimeout);
    }

    [Fact]
    public void Parses_every_option()
    {
        var options = RespClientOptions.Parse(
            "redis.svc:6380, password=s3cret=x ,user=proxy,db=2,connectTimeout=1500,commandTimeout=250,reconnectMinDelay=10,reconnectMaxDelay=900,abortConnect=false");

        Assert.Equal("redis.svc", options.Host);
        Assert.Equal(6380, options.Port);
        Assert.Equal("s3cret=x", options.Password);
        Assert.Equal("proxy", options.User);
        Assert.Equal(2, options.Database);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(250), options.CommandTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(10), options.ReconnectMinDelay);
        Assert.Equal(TimeSpan.FromMilliseconds(900), options.ReconnectMaxDelay);
    }

    [Fact]
    public void Defaults_the_port_and_accepts_bracketed_ipv6()
    {
        Assert.Equal(6379, RespClientOptions.Parse("localhost").Port);
        var v6 = RespClientOptions.Parse("[::1]:7000");
        Assert.Equal("::1", v6.Host);
        Assert.Equal(7000, v6.Port);
        Assert.Equal("[::1]:7000", v6.EndPoint);
    }

    [Theory]
    [InlineData("")]
    [InlineData("password=x")]
    [InlineData("host:0")]
    [InlineData("host:notaport")]
    [InlineData("host:1,db=-1")]
    [InlineData("host:1,commandTimeout=0")]
    [InlineData("host:1,bogus=1")]
    [InlineData("host:1,ssl=true")]
    [InlineData("host:1,reconnectMinDelay=500,reconnectMaxDelay=100")]
    public void Rejects_invalid_connection_strings(string connectionString) =>
        Assert.Throws<FormatException>(() => RespClientOptions.Parse(connectionString));

    [Fact]
    public void Parses_the_cluster_option()
    {
        Assert.False(RespClientOptions.Parse("redis:6379").Cluster);
        var options = RespClientOptions.Parse("redis-0.redis:6379,cluster=true,password=p");
        Assert.True(options.Cluster);
        Assert.Equal("redis-0.redis", options.Host);
        Assert.False(RespClientOptions.Parse("redis:6379,Cluster=False").Cluster);
        Assert.EndsWith(",cluster=true", options.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("host:1,cluster=yes")]
    [InlineData("host:1,cluster=true,db=2")]
    public void Rejects_invalid_cluster_settings(string connectionString) =>
        Assert.Throws<FormatException>(() => RespClientOptions.Parse(connectionString));

    [Fact]
    public void Never_shows_the_password()
    {
        var options = RespClientOptions.Parse("h:1,password=hunter2-secret");
        Assert.DoesNotContain("hunter2-secret", options.ToString(), StringComparison.Ordinal);

        var error = Assert.Throws<FormatException>(() => RespClientOptions.Parse("h:1,password=hunter2-secret,db=hunter2-secret"));
        Assert.DoesNotContain("hunter2-secret", error.Message, StringComparison.Ordinal);
    }
}
