using Gateway.Core.Hosting;
using Gateway.Core.Redis;
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
}
