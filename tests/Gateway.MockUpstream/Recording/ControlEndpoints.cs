using System.Text.Json;

namespace Gateway.MockUpstream.Recording;

/// <summary>The mock's own endpoints: health, recorded requests and per-path counts. No credential needed.</summary>
internal static class ControlEndpoints
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    public static void MapControlEndpoints(this IEndpointRouteBuilder app, RequestRecorder recorder, RequestStats stats)
    {
        app.MapGet("/healthz", static () => Results.Text("ok"));
        var mock = app.MapGroup("/_mock");
        mock.MapGet("/requests", () => Results.Json(new RecordedRequests(recorder.Enabled, recorder.Snapshot()), s_json));
        mock.MapDelete("/requests", () =>
        {
            recorder.Clear();
            return Results.NoContent();
        });
        mock.MapGet("/stats", () => Results.Json(new StatsSnapshot(stats.Total, stats.ByPath()), s_json));
        mock.MapDelete("/stats", () =>
        {
            stats.Clear();
            return Results.NoContent();
        });
    }
}

/// <summary>Body of GET /_mock/requests, oldest request first.</summary>
public sealed record RecordedRequests(bool Enabled, IReadOnlyList<RecordedRequest> Requests);

/// <summary>Body of GET /_mock/stats: requests to API routes (and unknown paths) since start or the last clear.</summary>
public sealed record StatsSnapshot(long Total, IReadOnlyDictionary<string, long> Paths);
