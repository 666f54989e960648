using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.MockUpstream;

namespace Gateway.EndToEnd.MockUpstream;

/// <summary>One mock upstream on a free loopback port, shared by the tests of a class.</summary>
public sealed class MockUpstreamFixture : IAsyncLifetime
{
    public MockUpstreamServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await MockUpstreamServer.StartAsync();
        Client = Server.CreateClient();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>Request building and response reading shared by the mock's tests.</summary>
internal static class MockHttp
{
    public static HttpRequestMessage Post(string path, string json, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        return request;
    }

    public static async Task<JsonElement> JsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public static HttpClient ClientWithoutCredentials(MockUpstreamServer server) => new() { BaseAddress = server.BaseAddress };

    public static HttpRequestMessage WithAuth(this HttpRequestMessage request, string scheme, string value)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue(scheme, value);
        return request;
    }
}

/// <summary>One server-sent event: its event name (null when the stream has none) and data.</summary>
internal sealed record SseEvent(string? Event, string Data)
{
    public JsonElement Json => JsonDocument.Parse(Data).RootElement.Clone();

    /// <summary>Splits a complete SSE body into events (blank-line separated, "event:" and "data:" fields).</summary>
    public static List<SseEvent> Parse(string body)
    {
        var events = new List<SseEvent>();
        foreach (var block in body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string? name = null;
            var data = new StringBuilder();
            foreach (var line in block.Split('\n'))
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line[7..];
                else if (line.StartsWith("data: ", StringComparison.Ordinal)) data.Append(line[6..]);
            }
            events.Add(new SseEvent(name, data.ToString()));
        }
        return events;
    }

    public static async Task<List<SseEvent>> ReadAllAsync(HttpResponseMessage response) =>
        Parse(await response.Content.ReadAsStringAsync());
}
