using Gateway.Core.Hosting;
using Gateway.Core.Redis;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Requests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Proxy.Endpoints;

/// <summary>Maps the proxy's routes.</summary>
public static class ProxyEndpoints
{
    public static IEndpointRouteBuilder MapProxyEndpoints(this IEndpointRouteBuilder app)
    {
        var handler = app.ServiceProvider.GetRequiredService<ProxyRequestHandler>();
        var info = app.ServiceProvider.GetRequiredService<InfoEndpoints>();

        // OpenAI surface.
        app.MapPost("/v1/chat/completions", ctx => handler.HandleAsync(ctx, ProxyRoute.ChatCompletions));
        app.MapPost("/v1/completions", ctx => handler.HandleAsync(ctx, ProxyRoute.Completions));
        app.MapPost("/v1/embeddings", ctx => handler.HandleAsync(ctx, ProxyRoute.Embeddings));
        app.MapPost("/v1/responses", ctx => handler.HandleAsync(ctx, ProxyRoute.Responses));
        app.MapGet("/v1/models", info.ModelsAsync);
        // Anthropic surface, and the Claude Code compatibility prefix.
        app.MapPost("/v1/messages", ctx => handler.HandleAsync(ctx, ProxyRoute.Messages));
        app.MapPost("/v1/messages/count_tokens", ctx => handler.HandleAsync(ctx, ProxyRoute.CountTokens));
        app.MapPost("/cc/v1/messages", ctx => handler.HandleAsync(ctx, ProxyRoute.ClaudeCodeMessages));
        app.MapPost("/cc/v1/messages/count_tokens", ctx => handler.HandleAsync(ctx, ProxyRoute.CountTokens));
        app.MapGet("/cc/v1/models", info.ModelsAsync);
        // TokenGate's own.
        app.MapGet("/v1/usage", info.UsageAsync);

        // Health on both listeners; /metrics on the management listener only. Not ready while Redis is
        // unreachable: without it no request can be admitted (503), so the Service should route elsewhere.
        var redis = app.ServiceProvider.GetRequiredService<IRedisClient>();
        app.MapManagementEndpoints(_ => ValueTask.FromResult(redis.IsConnected ? Readiness.Yes : Readiness.No("Redis is not connected")));
        return app;
    }

    // The routes above by path (routing matches paths case-insensitively and ignores a trailing slash).
    private static readonly (string Path, string Method)[] s_routes =
    [
        ("/v1/chat/completions", "POST"), ("/v1/completions", "POST"), ("/v1/embeddings", "POST"), ("/v1/responses", "POST"),
        ("/v1/models", "GET"), ("/v1/messages", "POST"), ("/v1/messages/count_tokens", "POST"), ("/cc/v1/messages", "POST"),
        ("/cc/v1/messages/count_tokens", "POST"), ("/cc/v1/models", "GET"), ("/v1/usage", "GET"),
    ];

    /// <summary>The fallback: a known path with another method is a 405 naming the right one, anything else a 404;
    /// both in the Anthropic shape when the client sent anthropic-version or the path is a Messages one.</summary>
    public static Task UnmatchedAsync(HttpContext context)
    {
        var path = (context.Request.Path.Value ?? "").AsSpan().TrimEnd('/');
        var anthropic = context.Request.Headers.ContainsKey("anthropic-version")
            || path.StartsWith("/v1/messages", StringComparison.OrdinalIgnoreCase) || path.StartsWith("/cc/v1/messages", StringComparison.OrdinalIgnoreCase);
        var dialect = anthropic ? ApiDialect.Anthropic : ApiDialect.OpenAI;
        foreach (var (known, method) in s_routes)
        {
            if (!path.Equals(known, StringComparison.OrdinalIgnoreCase)) continue;
            context.Response.Headers.Allow = method;
            return ProxyError.MethodNotAllowed.WriteAsync(context, dialect, string.Concat(known, " accepts ", method, " only."));
        }
        return ProxyError.UnknownRoute.WriteAsync(context, dialect);
    }
}
