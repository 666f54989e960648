using System.Text;
using Gateway.Proxy.Metering;

namespace Gateway.Proxy.Tests.Metering;

public sealed class ProviderErrorCodeTests
{
    [Theory]
    [InlineData("""{"error":{"message":"x","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}""", "insufficient_quota")]
    [InlineData("""{"error":{"message":"x","type":"server_error","param":null,"code":null}}""", "server_error")]
    [InlineData("""{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""", "overloaded_error")]
    [InlineData("""{"id":1,"error":{"code":"context_length_exceeded"}}""", "context_length_exceeded")]
    [InlineData("""{"error":"plain text"}""", null)]
    [InlineData("""{"error":{"code":"has spaces and <html>"}}""", null)]
    [InlineData("""not json""", null)]
    [InlineData("""{"error":{"code":""", null)]
    public void Reads_the_providers_own_code(string body, string? expected)
    {
        Assert.Equal(expected, ProviderErrorCode.Read(Encoding.UTF8.GetBytes(body)));
    }
}
