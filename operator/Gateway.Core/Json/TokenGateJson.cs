using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Core.Json;

/// <summary>The JSON settings used for resources and projections: camelCase, nulls omitted.</summary>
public static class TokenGateJson
{
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            WriteIndented = false,
        };
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}
