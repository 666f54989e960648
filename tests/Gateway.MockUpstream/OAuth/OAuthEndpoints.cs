using System.Text.Json;

namespace Gateway.MockUpstream.OAuth;

/// <summary>
/// POST /oauth/token (the refresh_token grant, form-encoded, RFC 6749 §6) and the test controls under
/// /_mock/oauth: sign an account in, revoke it, read its counts.
/// </summary>
internal static class OAuthEndpoints
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    public static void MapOAuthEndpoints(this IEndpointRouteBuilder app, OAuthTokenStore store)
    {
        app.MapPost("/oauth/token", (Delegate)((HttpContext context) => TokenAsync(context, store)));

        var mock = app.MapGroup("/_mock/oauth");
        mock.MapPost("/accounts/{account}", (string account, double? expiresIn) =>
        {
            var t = store.SignIn(account, expiresIn);
            return Results.Json(new TokenResponse(t.AccessToken, "Bearer", t.ExpiresInSeconds, t.RefreshToken), s_json);
        });
        mock.MapPost("/accounts/{account}/revoke", (string account) =>
            store.Revoke(account) ? Results.NoContent() : Results.NotFound());
        mock.MapPost("/accounts/{account}/invalidate-access", (string account) =>
            store.InvalidateAccessTokens(account) ? Results.NoContent() : Results.NotFound());
        mock.MapGet("/accounts/{account}", (string account) =>
            store.Stats(account) is { } s ? Results.Json(s, s_json) : Results.NotFound());
        mock.MapGet("/accounts", () => Results.Json(store.AllStats(), s_json));
        mock.MapGet("/accounts/{account}/tokens", (string account) => Results.Json(store.IssuedTo(account), s_json));
    }

    private static async Task<IResult> TokenAsync(HttpContext context, OAuthTokenStore store)
    {
        if (!context.Request.HasFormContentType)
            return Error(400, "invalid_request", "The token endpoint takes application/x-www-form-urlencoded bodies.");
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var grant = form["grant_type"].ToString();
        if (grant != "refresh_token")
            return Error(400, "unsupported_grant_type", $"The mock provider supports grant_type=refresh_token only (got '{grant}').");
        var refreshToken = form["refresh_token"].ToString();
        if (refreshToken.Length == 0) return Error(400, "invalid_request", "refresh_token is required.");
        var outcome = store.Refresh(refreshToken, form["client_id"].ToString());
        if (outcome.Tokens is { } t)
        {
            context.Response.Headers.CacheControl = "no-store";
            return Results.Json(new TokenResponse(t.AccessToken, "Bearer", t.ExpiresInSeconds, t.RefreshToken), s_json);
        }
        return Error(outcome.Error == "invalid_client" ? 401 : 400, outcome.Error!, outcome.Description!);
    }

    private static IResult Error(int status, string error, string description) =>
        Results.Json(new ErrorResponse(error, description), s_json, statusCode: status);

    private sealed record TokenResponse(
        [property: System.Text.Json.Serialization.JsonPropertyName("access_token")] string AccessToken,
        [property: System.Text.Json.Serialization.JsonPropertyName("token_type")] string TokenType,
        [property: System.Text.Json.Serialization.JsonPropertyName("expires_in")] double ExpiresIn,
        [property: System.Text.Json.Serialization.JsonPropertyName("refresh_token")] string RefreshToken);

    private sealed record ErrorResponse(
        [property: System.Text.Json.Serialization.JsonPropertyName("error")] string Error,
        [property: System.Text.Json.Serialization.JsonPropertyName("error_description")] string Description);
}
