using System.Text.Encodings.Web;
using System.Text.Json;
using Gateway.MockUpstream.Hosting;
using Gateway.MockUpstream.Responses;

namespace Gateway.MockUpstream.OpenAI;

/// <summary>
/// GET /v1/models and /v1/models/{id}: OpenAI's list shape, or Anthropic's when the request carries
/// an anthropic-version header (both providers serve the same path). Bodies are built once.
/// </summary>
internal sealed class ModelsEndpoint
{
    // A fixed creation time: the list is static data and stays byte-identical across runs.
    private const long CreatedUnix = 1_735_689_600; // 2025-01-01T00:00:00Z

    private readonly byte[] _openAIList;
    private readonly byte[] _anthropicList;
    private readonly Dictionary<string, (byte[] OpenAI, byte[] Anthropic)> _byId = new(StringComparer.Ordinal);

    public ModelsEndpoint(IReadOnlyList<string> models)
    {
        _openAIList = Build(w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var m in models) WriteOpenAIModel(w, m);
            w.WriteEndArray();
            w.WriteEndObject();
        });
        _anthropicList = Build(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var m in models) WriteAnthropicModel(w, m);
            w.WriteEndArray();
            w.WriteBoolean("has_more", false);
            if (models.Count > 0)
            {
                w.WriteString("first_id", models[0]);
                w.WriteString("last_id", models[^1]);
            }
            else
            {
                w.WriteNull("first_id");
                w.WriteNull("last_id");
            }
            w.WriteEndObject();
        });
        foreach (var m in models)
            _byId[m] = (Build(w => WriteOpenAIModel(w, m)), Build(w => WriteAnthropicModel(w, m)));
    }

    public Task ListAsync(MockCall call) =>
        WriteAsync(call, IsAnthropic(call) ? _anthropicList : _openAIList);

    public Task GetAsync(MockCall call)
    {
        var id = call.Context.GetRouteValue("id") as string ?? "";
        var anthropic = IsAnthropic(call);
        if (!_byId.TryGetValue(id, out var bodies))
        {
            return ProviderErrors.WriteAsync(call.Context, anthropic ? ApiFamily.Anthropic : ApiFamily.OpenAI,
                StatusCodes.Status404NotFound, $"The model '{id}' does not exist on the mock upstream (configure Mock:Models).");
        }
        return WriteAsync(call, anthropic ? bodies.Anthropic : bodies.OpenAI);
    }

    private static bool IsAnthropic(MockCall call) => call.Context.Request.Headers.ContainsKey("anthropic-version");

    private static async Task WriteAsync(MockCall call, byte[] body)
    {
        var response = call.Context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = MockResponses.JsonContentType;
        response.ContentLength = body.Length;
        await response.BodyWriter.WriteAsync(body, call.Context.RequestAborted);
    }

    private static void WriteOpenAIModel(Utf8JsonWriter w, string id)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "model");
        w.WriteNumber("created", CreatedUnix);
        w.WriteString("owned_by", "tokengate-mock");
        w.WriteEndObject();
    }

    private static void WriteAnthropicModel(Utf8JsonWriter w, string id)
    {
        w.WriteStartObject();
        w.WriteString("type", "model");
        w.WriteString("id", id);
        w.WriteString("display_name", id);
        w.WriteString("created_at", DateTimeOffset.FromUnixTimeSeconds(CreatedUnix));
        w.WriteEndObject();
    }

    private static byte[] Build(Action<Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            write(w);
        return stream.ToArray();
    }
}
