using Gateway.MockUpstream.Anthropic;
using Gateway.MockUpstream.Hosting;
using Gateway.MockUpstream.OAuth;
using Gateway.MockUpstream.OpenAI;
using Gateway.MockUpstream.Recording;
using Gateway.MockUpstream.Responses;

namespace Gateway.MockUpstream;

/// <summary>Builds the mock upstream: an OpenAI-, Azure OpenAI- and Anthropic-compatible server with deterministic replies.</summary>
public static class MockUpstreamApp
{
    /// <summary>Where the mock listens when neither --urls, ASPNETCORE_URLS nor Kestrel endpoints say otherwise.</summary>
    public const string DefaultUrl = "http://127.0.0.1:8089";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        // Per-request framework logs would dominate a benchmark; configuration can turn them back on.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        configure?.Invoke(builder);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && !builder.Configuration.GetSection("Kestrel:Endpoints").Exists())
            builder.WebHost.UseUrls(DefaultUrl);

        var options = builder.Configuration.GetSection(MockUpstreamOptions.SectionName).Get<MockUpstreamOptions>() ?? new();
        options.Validate();
        var recorder = new RequestRecorder(options.Record, options.RecordCapacity);
        var stats = new RequestStats();
        var tokens = new OAuthTokenStore(options.OAuth, TimeProvider.System);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(tokens);
        builder.Services.AddSingleton(recorder);
        builder.Services.AddSingleton(stats);

        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.MockUpstream");
        var pipeline = new MockPipeline(recorder, stats, options.ApiKey, logger, options.OAuth.RequireAccessToken ? tokens : null);
        app.MapControlEndpoints(recorder, stats);
        app.MapOAuthEndpoints(tokens);
        app.MapProviderEndpoints(pipeline, new ModelsEndpoint(options.Models is { Length: > 0 } m ? m : MockUpstreamOptions.DefaultModels));
        return app;
    }

    private static void MapProviderEndpoints(this WebApplication app, MockPipeline pipeline, ModelsEndpoint models)
    {
        const BodyKind json = BodyKind.JsonWithModel;
        var chat = pipeline.Create(ApiFamily.OpenAI, json, ChatCompletionsEndpoint.HandleAsync);
        var completions = pipeline.Create(ApiFamily.OpenAI, json, CompletionsEndpoint.HandleAsync);
        var embeddings = pipeline.Create(ApiFamily.OpenAI, json, EmbeddingsEndpoint.HandleAsync);
        var responses = pipeline.Create(ApiFamily.OpenAI, json, ResponsesEndpoint.HandleAsync);
        var modelList = pipeline.Create(ApiFamily.OpenAI, BodyKind.None, models.ListAsync);
        var model = pipeline.Create(ApiFamily.OpenAI, BodyKind.None, models.GetAsync);
        var messages = pipeline.Create(ApiFamily.Anthropic, json, MessagesEndpoint.HandleAsync);
        var countTokens = pipeline.Create(ApiFamily.Anthropic, json, MessagesEndpoint.CountTokensAsync);

        // Each route with and without the /v1 prefix: base URLs are configured both ways in the wild.
        foreach (var prefix in (string[])["/v1", ""])
        {
            app.MapPost(prefix + "/chat/completions", chat);
            app.MapPost(prefix + "/completions", completions);
            app.MapPost(prefix + "/embeddings", embeddings);
            app.MapPost(prefix + "/responses", responses);
            app.MapGet(prefix + "/models", modelList);
            app.MapGet(prefix + "/models/{id}", model);
            app.MapPost(prefix + "/messages", messages);
            app.MapPost(prefix + "/messages/count_tokens", countTokens);
        }

        const string azure = "/openai/deployments/{deployment}";
        app.MapPost(azure + "/chat/completions", pipeline.Create(ApiFamily.OpenAI, BodyKind.AzureJson, ChatCompletionsEndpoint.HandleAsync));
        app.MapPost(azure + "/completions", pipeline.Create(ApiFamily.OpenAI, BodyKind.AzureJson, CompletionsEndpoint.HandleAsync));
        app.MapPost(azure + "/embeddings", pipeline.Create(ApiFamily.OpenAI, BodyKind.AzureJson, EmbeddingsEndpoint.HandleAsync));

        // Unknown paths are counted and recorded too, so a test sees where a proxy sent a request.
        app.MapFallback(pipeline.Create(ApiFamily.OpenAI, BodyKind.None, static call =>
            ProviderErrors.WriteAsync(call.Context,
                call.Context.Request.Path.StartsWithSegments("/v1/messages") ? ApiFamily.Anthropic : ApiFamily.OpenAI,
                StatusCodes.Status404NotFound,
                $"The mock upstream has no route {call.Context.Request.Method} {call.Context.Request.Path}.")));
    }
}
