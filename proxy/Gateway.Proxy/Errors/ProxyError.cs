using System.Globalization;
using System.Text.Json;
using Gateway.Proxy.Requests;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Errors;

/// <summary>An error the proxy itself returns, rendered in the calling route's provider shape.</summary>
/// <param name="Status">HTTP status.</param>
/// <param name="Type">OpenAI error type (invalid_request_error, rate_limit_error …).</param>
/// <param name="Code">OpenAI error code (invalid_api_key, model_not_allowed …).</param>
/// <param name="AnthropicType">Anthropic error type (authentication_error, permission_error …).</param>
/// <param name="Message">What went wrong and what to do; never contains a key or body.</param>
/// <param name="Reason">Bounded label for tokengate_proxy_rejections_total.</param>
public sealed record ProxyError(int Status, string Type, string Code, string AnthropicType, string Message, string Reason)
{
    public static readonly ProxyError MissingKey = new(401, "invalid_request_error", "invalid_api_key", "authentication_error",
        "No API key provided. Send your TokenGate key as 'Authorization: Bearer <key>', 'x-api-key: <key>' or 'api-key: <key>'.", "missing_key");
    public static readonly ProxyError InvalidKey = new(401, "invalid_request_error", "invalid_api_key", "authentication_error",
        "Incorrect API key provided. Check the key in your TokenGate Secret or portal.", "invalid_key");
    public static readonly ProxyError KeyDisabled = new(403, "permission_error", "key_disabled", "permission_error",
        "This API key is disabled. Ask your platform team to re-enable it or use another key.", "key_disabled");
    public static readonly ProxyError KeyExpired = new(403, "permission_error", "key_expired", "permission_error",
        "This API key has expired. Rotate it in the portal or ask your platform team for a new one.", "key_expired");
    public static readonly ProxyError UserSuspended = new(403, "permission_error", "user_suspended", "permission_error",
        "The owner of this API key is suspended. Contact your platform team.", "user_suspended");
    public static readonly ProxyError ModelNotAllowed = new(403, "permission_error", "model_not_allowed", "permission_error",
        "This API key is not allowed to use the requested model. GET /v1/models lists the models it may use.", "model_not_allowed");
    public static readonly ProxyError ModelNotFound = new(404, "invalid_request_error", "model_not_found", "not_found_error",
        "The requested model is not served by any upstream account of this gateway. GET /v1/models lists the available models.", "model_not_found");
    public static readonly ProxyError MalformedJson = new(400, "invalid_request_error", "invalid_json", "invalid_request_error",
        "The request body is not valid JSON. Send a single JSON object.", "bad_request");
    public static readonly ProxyError NotAnObject = new(400, "invalid_request_error", "invalid_json", "invalid_request_error",
        "The request body must be a JSON object.", "bad_request");
    public static readonly ProxyError InvalidUtf8 = new(400, "invalid_request_error", "invalid_encoding", "invalid_request_error",
        "The request body is not valid UTF-8 text (invalid bytes, or a \\u escape of a lone surrogate).", "bad_request");
    public static readonly ProxyError DuplicateModel = new(400, "invalid_request_error", "invalid_json", "invalid_request_error",
        "The request body has more than one 'model'. Send it once.", "bad_request");
    public static readonly ProxyError InvalidHeader = new(400, "invalid_request_error", "invalid_header", "invalid_request_error",
        "A request header has a value with non-ASCII or control characters, which cannot be forwarded. Send header values as printable ASCII.", "bad_request");
    public static readonly ProxyError MethodNotAllowed = new(405, "invalid_request_error", "method_not_allowed", "invalid_request_error",
        "This path does not accept this HTTP method.", "method_not_allowed");
    public static readonly ProxyError MalformedBody = new(400, "invalid_request_error", "invalid_body", "invalid_request_error",
        "The request body ended early or its chunked encoding is invalid. Send the whole body as declared.", "bad_request");
    public static readonly ProxyError RequestTimeout = new(408, "invalid_request_error", "request_timeout", "invalid_request_error",
        "The request body did not arrive in time. Send it at once, or more quickly.", "request_timeout");
    public static readonly ProxyError MissingModel = new(400, "invalid_request_error", "missing_model", "invalid_request_error",
        "The request body has no 'model'. Set \"model\" to one of the models listed by GET /v1/models.", "bad_request");
    public static readonly ProxyError WrongContentType = new(400, "invalid_request_error", "invalid_content_type", "invalid_request_error",
        "The request must have 'Content-Type: application/json'.", "bad_request");
    public static readonly ProxyError BodyTooLarge = new(413, "invalid_request_error", "request_too_large", "request_too_large",
        "The request body is larger than this gateway accepts.", "body_too_large");
    public static readonly ProxyError RedisUnavailable = new(503, "server_error", "gateway_unavailable", "api_error",
        "The gateway cannot reach its policy store (Redis), so it cannot check keys or meter usage. Requests are refused until it is back; retry shortly.", "redis_unavailable");
    public static readonly ProxyError ProjectionRebuilding = new(503, "server_error", "gateway_unavailable", "api_error",
        "The gateway's policy store (Redis) lost its data and is being rebuilt from the system of record. Requests are refused until it is back; retry shortly.", "projection_rebuilding");
    public static readonly ProxyError NoUpstream = new(503, "server_error", "upstream_unavailable", "overloaded_error",
        "Every upstream account serving this model is cooling down after failures, disabled or at its limits. Retry shortly.", "no_upstream");
    public static readonly ProxyError UpstreamConnectFailed = new(502, "server_error", "upstream_error", "api_error",
        "The upstream provider could not be reached. Retry shortly.", "upstream_failed");
    public static readonly ProxyError UnknownRoute = new(404, "invalid_request_error", "unknown_url", "not_found_error",
        "Unknown path. The gateway serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, /v1/models, /v1/messages, /v1/messages/count_tokens and /v1/usage.", "unknown_route");
    public static readonly ProxyError UpstreamTimeout = new(504, "server_error", "upstream_timeout", "api_error",
        "The upstream provider did not answer in time. Retry shortly or lower max tokens.", "upstream_timeout");

    /// <summary>Writes this error as the response, in the route's provider shape.</summary>
    public Task WriteAsync(HttpContext context, ApiDialect dialect) => WriteAsync(context, dialect, Message);

    // The default encoder writes ' as \u0027 and non-ASCII as \uXXXX: valid, but unreadable for someone
    // reading the body with curl. The relaxed encoder still escapes quotes, backslashes and control
    // characters, so echoing a client's model name keeps the JSON valid; the body is application/json,
    // never HTML.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes this error with a more specific message.</summary>
    public Task WriteAsync(HttpContext context, ApiDialect dialect, string message)
    {
        var response = context.Response;
        response.StatusCode = Status;
        response.ContentType = "application/json";
        // The writer targets the response pipe directly: no intermediate string or array.
        using var writer = new Utf8JsonWriter(response.BodyWriter, WriterOptions);
        writer.WriteStartObject();
        if (dialect == ApiDialect.Anthropic)
        {
            writer.WriteString("type"u8, "error"u8);
            writer.WriteStartObject("error"u8);
            writer.WriteString("type"u8, AnthropicType);
            writer.WriteString("message"u8, message);
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteStartObject("error"u8);
            writer.WriteString("message"u8, message);
            writer.WriteString("type"u8, Type);
            writer.WriteNull("param"u8);
            writer.WriteString("code"u8, Code);
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
        writer.Flush();
        return response.BodyWriter.FlushAsync(context.RequestAborted).AsTask();
    }

    /// <summary>Formats seconds for Retry-After (whole seconds, at least 1).</summary>
    public static string RetryAfterSeconds(double seconds) =>
        Math.Max(1, (long)Math.Ceiling(seconds)).ToString(CultureInfo.InvariantCulture);
}
