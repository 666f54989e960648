using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>One request as it reached the upstream: every header (credentials included, as sent) and the body length.</summary>
public sealed record WitnessedRequest(string Path, string? CaseId, IReadOnlyList<KeyValuePair<string, string>> Headers, long BodyLength, long? DeclaredLength);

/// <summary>
/// Sits in front of the mock upstream (a startup filter, so before its routing) and records every request exactly as
/// the proxy sent it, unlike the mock's own recorder, which hashes credentials and leaves out Cookie and
/// Proxy-Authorization. Marks its answers with <see cref="MarkerHeader"/> so a client can tell the upstream's own
/// answer (passed through) from one the proxy made.
/// </summary>
public sealed class UpstreamWitness
{
    public const string MarkerHeader = "x-fuzz-upstream";
    public const string CaseHeader = "x-fuzz-case";

    private readonly ConcurrentQueue<WitnessedRequest> _requests = new();
    private readonly ConcurrentDictionary<string, byte> _cases = new(StringComparer.Ordinal);

    /// <summary>Installs the witness on the mock's builder.</summary>
    /// <remarks>The mock's own recorder is turned off: it keeps whole bodies, which would blur the heap figures.</remarks>
    public void Install(WebApplicationBuilder builder)
    {
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Mock:Record"] = "false" });
        builder.Services.AddSingleton<IStartupFilter>(new Filter(this));
    }

    /// <summary>Whether any request of this case id reached the upstream.</summary>
    public bool Reached(string caseId) => _cases.ContainsKey(caseId);

    /// <summary>Takes (and forgets) what was recorded so far.</summary>
    public List<WitnessedRequest> Drain()
    {
        var list = new List<WitnessedRequest>();
        while (_requests.TryDequeue(out var r)) list.Add(r);
        return list;
    }

    private async Task RecordAsync(HttpContext context, RequestDelegate next)
    {
        var request = context.Request;
        // Read the body here (buffered, so the mock reads it again) to compare it with the declared length.
        request.EnableBuffering();
        long length = 0;
        var buffer = new byte[16 * 1024];
        int n;
        while ((n = await request.Body.ReadAsync(buffer, context.RequestAborted)) > 0) length += n;
        request.Body.Position = 0;
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var (name, values) in request.Headers)
            foreach (var v in values) headers.Add(new(name.ToLowerInvariant(), v ?? ""));
        var caseId = request.Headers[CaseHeader].ToString();
        if (caseId.Length > 0) _cases.TryAdd(caseId, 0);
        _requests.Enqueue(new WitnessedRequest(request.Path.Value ?? "", caseId.Length > 0 ? caseId : null, headers, length, request.ContentLength));
        context.Response.OnStarting(static state =>
        {
            ((HttpResponse)state).Headers[MarkerHeader] = "1";
            return Task.CompletedTask;
        }, context.Response);
        await next(context);
    }

    private sealed class Filter(UpstreamWitness witness) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(witness.RecordAsync);
            next(app);
        };
    }
}
