using System.Text.Json;

namespace Gateway.MockUpstream.Responses;

/// <summary>Which provider's conventions a route follows (error shape, model list shape).</summary>
internal enum ApiFamily
{
    OpenAI,
    Anthropic,
}

/// <summary>Errors in each provider's shape, so clients and proxies parse them as they would the real ones.</summary>
internal static class ProviderErrors
{
    private static readonly JsonEncodedText s_error = JsonEncodedText.Encode("error");
    private static readonly JsonEncodedText s_message = JsonEncodedText.Encode("message");
    private static readonly JsonEncodedText s_type = JsonEncodedText.Encode("type");
    private static readonly JsonEncodedText s_param = JsonEncodedText.Encode("param");
    private static readonly JsonEncodedText s_code = JsonEncodedText.Encode("code");

    public static async Task WriteAsync(HttpContext context, ApiFamily family, int status, string message)
    {
        var buffer = JsonBuffer.Rent();
        try
        {
            var w = buffer.Writer;
            w.WriteStartObject();
            if (family == ApiFamily.Anthropic)
            {
                // {"type":"error","error":{"type":"rate_limit_error","message":"..."}}
                w.WriteString(s_type, s_error);
                w.WriteStartObject(s_error);
                w.WriteString(s_type, AnthropicType(status));
                w.WriteString(s_message, message);
                w.WriteEndObject();
            }
            else
            {
                // {"error":{"message":"...","type":"...","param":null,"code":"..."}}
                var (type, code) = OpenAITypeAndCode(status);
                w.WriteStartObject(s_error);
                w.WriteString(s_message, message);
                w.WriteString(s_type, type);
                w.WriteNull(s_param);
                if (code is null) w.WriteNull(s_code);
                else w.WriteString(s_code, code);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            if (status == StatusCodes.Status429TooManyRequests && !context.Response.Headers.ContainsKey("Retry-After")) context.Response.Headers.RetryAfter = "1";
            await MockResponses.WriteJsonAsync(context, status, buffer, Requests.MockFault.None);
        }
        finally
        {
            buffer.Return();
        }
    }

    /// <summary>A default message for an injected status.</summary>
    public static string InjectedMessage(int status) => status switch
    {
        400 => "Invalid request (injected by x-mock-status).",
        401 => "Invalid authentication (injected by x-mock-status).",
        403 => "Permission denied (injected by x-mock-status).",
        404 => "Not found (injected by x-mock-status).",
        429 => "Rate limit reached; retry after 1 second (injected by x-mock-status).",
        500 => "The server had an error while processing your request (injected by x-mock-status).",
        503 => "The server is overloaded or not ready yet (injected by x-mock-status).",
        529 => "Overloaded (injected by x-mock-status).",
        _ => $"Injected error {status} (x-mock-status).",
    };

    private static string AnthropicType(int status) => status switch
    {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };

    private static (string Type, string? Code) OpenAITypeAndCode(int status) => status switch
    {
        401 => ("invalid_request_error", "invalid_api_key"),
        403 => ("invalid_request_error", "permission_denied"),
        404 => ("invalid_request_error", "not_found"),
        429 => ("requests", "rate_limit_exceeded"),
        >= 500 => ("server_error", null),
        _ => ("invalid_request_error", null),
    };
}
