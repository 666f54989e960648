using System.Net;
using System.Text.Json;

namespace Gateway.Operator.OAuth;

/// <summary>A successful refresh: the new access token, the rotated refresh token (null when the provider kept the old one).</summary>
public sealed record TokenGrant(string AccessToken, string? RefreshToken, string? IdToken, TimeSpan? ExpiresIn);

/// <summary>
/// How a refresh failed. <see cref="Rejected"/> means the provider refused the grant (invalid_grant, invalid_client…):
/// retrying with the same refresh token will not help. Otherwise it was transient (network, 5xx, 429, a garbled answer).
/// Error and Description come from the provider's error body only, never from a token.
/// </summary>
public sealed record TokenGrantFailure(bool Rejected, string Error, string Description, int? HttpStatus);

/// <summary>The refresh_token grant (RFC 6749 §6) against an account's token endpoint.</summary>
public sealed class OAuthTokenClient(HttpClient http)
{
    private const int MaxDescription = 200;

    public async Task<(TokenGrant? Grant, TokenGrantFailure? Failure)> RefreshAsync(Uri tokenUrl, string clientId, string refreshToken, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        using var request = new HttpRequestMessage(HttpMethod.Post, tokenUrl)
        {
            Content = new FormUrlEncodedContent([
                new("grant_type", "refresh_token"),
                new("refresh_token", refreshToken),
                new("client_id", clientId),
            ]),
        };
        request.Headers.Accept.ParseAdd("application/json");
        HttpResponseMessage response;
        string body;
        try
        {
            response = await http.SendAsync(request, cts.Token);
            body = await response.Content.ReadAsStringAsync(cts.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, new TokenGrantFailure(false, "timeout", $"The token endpoint did not answer within {timeout.TotalSeconds:0.#} s.", null));
        }
        catch (HttpRequestException e)
        {
            return (null, new TokenGrantFailure(false, "unreachable", Trim($"The token endpoint could not be reached: {e.HttpRequestError}."), null));
        }
        using (response)
        {
            var status = (int)response.StatusCode;
            JsonElement root;
            try
            {
                using var doc = JsonDocument.Parse(body);
                root = doc.RootElement.Clone();
            }
            catch (JsonException)
            {
                return (null, new TokenGrantFailure(false, "invalid_response", $"The token endpoint answered {status} without a JSON body.", status));
            }
            if (response.IsSuccessStatusCode)
            {
                if (root.ValueKind != JsonValueKind.Object || Str(root, "access_token") is not { Length: > 0 } access)
                    return (null, new TokenGrantFailure(false, "invalid_response", $"The token endpoint answered {status} without an access_token.", status));
                TimeSpan? expiresIn = root.TryGetProperty("expires_in", out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out var s) && s > 0
                    ? TimeSpan.FromSeconds(s)
                    : e.ValueKind == JsonValueKind.String && double.TryParse(e.GetString(), System.Globalization.CultureInfo.InvariantCulture, out var s2) && s2 > 0 ? TimeSpan.FromSeconds(s2) : null;
                return (new TokenGrant(access, Str(root, "refresh_token") is { Length: > 0 } r ? r : null, Str(root, "id_token"), expiresIn), null);
            }
            var error = root.ValueKind == JsonValueKind.Object ? Str(root, "error") : null;
            var description = root.ValueKind == JsonValueKind.Object ? Str(root, "error_description") : null;
            // RFC 6749 §5.2: 400/401 with an error code is the provider refusing the grant; anything else may pass.
            var rejected = error is not null && (response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden);
            return (null, new TokenGrantFailure(rejected, Trim(error ?? "http_" + status), Trim(description ?? $"The token endpoint answered {status}."), status));
        }
    }

    private static string? Str(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static string Trim(string s) => s.Length <= MaxDescription ? s : s[..MaxDescription] + "…";
}
