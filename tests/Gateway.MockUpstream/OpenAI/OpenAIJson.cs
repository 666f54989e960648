using System.Text.Json;
using Gateway.MockUpstream.Hosting;

namespace Gateway.MockUpstream.OpenAI;

/// <summary>Property names and usage objects of OpenAI's payloads, encoded once.</summary>
internal static class OpenAIJson
{
    public static readonly JsonEncodedText Id = JsonEncodedText.Encode("id");
    public static readonly JsonEncodedText Object = JsonEncodedText.Encode("object");
    public static readonly JsonEncodedText Created = JsonEncodedText.Encode("created");
    public static readonly JsonEncodedText Model = JsonEncodedText.Encode("model");
    public static readonly JsonEncodedText Choices = JsonEncodedText.Encode("choices");
    public static readonly JsonEncodedText IndexName = JsonEncodedText.Encode("index");
    public static readonly JsonEncodedText Message = JsonEncodedText.Encode("message");
    public static readonly JsonEncodedText Delta = JsonEncodedText.Encode("delta");
    public static readonly JsonEncodedText Role = JsonEncodedText.Encode("role");
    public static readonly JsonEncodedText Assistant = JsonEncodedText.Encode("assistant");
    public static readonly JsonEncodedText Content = JsonEncodedText.Encode("content");
    public static readonly JsonEncodedText Text = JsonEncodedText.Encode("text");
    public static readonly JsonEncodedText Refusal = JsonEncodedText.Encode("refusal");
    public static readonly JsonEncodedText Annotations = JsonEncodedText.Encode("annotations");
    public static readonly JsonEncodedText Logprobs = JsonEncodedText.Encode("logprobs");
    public static readonly JsonEncodedText FinishReason = JsonEncodedText.Encode("finish_reason");
    public static readonly JsonEncodedText Stop = JsonEncodedText.Encode("stop");
    public static readonly JsonEncodedText Length = JsonEncodedText.Encode("length");
    public static readonly JsonEncodedText Usage = JsonEncodedText.Encode("usage");
    public static readonly JsonEncodedText ServiceTier = JsonEncodedText.Encode("service_tier");
    public static readonly JsonEncodedText Default = JsonEncodedText.Encode("default");
    public static readonly JsonEncodedText SystemFingerprint = JsonEncodedText.Encode("system_fingerprint");
    public static readonly JsonEncodedText Fingerprint = JsonEncodedText.Encode("fp_mock");

    private static readonly JsonEncodedText s_promptTokens = JsonEncodedText.Encode("prompt_tokens");
    private static readonly JsonEncodedText s_completionTokens = JsonEncodedText.Encode("completion_tokens");
    private static readonly JsonEncodedText s_totalTokens = JsonEncodedText.Encode("total_tokens");
    private static readonly JsonEncodedText s_promptTokensDetails = JsonEncodedText.Encode("prompt_tokens_details");
    private static readonly JsonEncodedText s_completionTokensDetails = JsonEncodedText.Encode("completion_tokens_details");
    private static readonly JsonEncodedText s_cachedTokens = JsonEncodedText.Encode("cached_tokens");
    private static readonly JsonEncodedText s_audioTokens = JsonEncodedText.Encode("audio_tokens");
    private static readonly JsonEncodedText s_reasoningTokens = JsonEncodedText.Encode("reasoning_tokens");
    private static readonly JsonEncodedText s_acceptedPrediction = JsonEncodedText.Encode("accepted_prediction_tokens");
    private static readonly JsonEncodedText s_rejectedPrediction = JsonEncodedText.Encode("rejected_prediction_tokens");
    private static readonly JsonEncodedText s_inputTokens = JsonEncodedText.Encode("input_tokens");
    private static readonly JsonEncodedText s_outputTokens = JsonEncodedText.Encode("output_tokens");
    private static readonly JsonEncodedText s_inputTokensDetails = JsonEncodedText.Encode("input_tokens_details");
    private static readonly JsonEncodedText s_outputTokensDetails = JsonEncodedText.Encode("output_tokens_details");

    /// <summary>Writes id, object, created and model, the head every chat and completion object shares.</summary>
    public static void WriteHead(Utf8JsonWriter w, string id, JsonEncodedText objectType, MockCall call)
    {
        w.WriteString(Id, id);
        w.WriteString(Object, objectType);
        w.WriteNumber(Created, call.Created);
        w.WriteString(Model, call.Model);
    }

    /// <summary>Chat / completions usage: prompt_tokens includes cached tokens, completion_tokens includes reasoning.</summary>
    public static void WriteUsage(Utf8JsonWriter w, in MockUsage u)
    {
        w.WriteStartObject(Usage);
        w.WriteNumber(s_promptTokens, u.OpenAIPrompt);
        w.WriteNumber(s_completionTokens, u.TotalOutput);
        w.WriteNumber(s_totalTokens, u.OpenAIPrompt + u.TotalOutput);
        w.WriteStartObject(s_promptTokensDetails);
        w.WriteNumber(s_cachedTokens, u.CachedRead);
        w.WriteNumber(s_audioTokens, 0);
        w.WriteEndObject();
        w.WriteStartObject(s_completionTokensDetails);
        w.WriteNumber(s_reasoningTokens, u.Reasoning);
        w.WriteNumber(s_audioTokens, 0);
        w.WriteNumber(s_acceptedPrediction, 0);
        w.WriteNumber(s_rejectedPrediction, 0);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Embeddings usage: prompt_tokens and total_tokens only.</summary>
    public static void WriteEmbeddingsUsage(Utf8JsonWriter w, in MockUsage u)
    {
        w.WriteStartObject(Usage);
        w.WriteNumber(s_promptTokens, u.OpenAIPrompt);
        w.WriteNumber(s_totalTokens, u.OpenAIPrompt);
        w.WriteEndObject();
    }

    /// <summary>Responses API usage: input_tokens includes cached tokens, output_tokens includes reasoning.</summary>
    public static void WriteResponsesUsage(Utf8JsonWriter w, in MockUsage u)
    {
        w.WriteStartObject(Usage);
        w.WriteNumber(s_inputTokens, u.OpenAIPrompt);
        w.WriteStartObject(s_inputTokensDetails);
        w.WriteNumber(s_cachedTokens, u.CachedRead);
        w.WriteEndObject();
        w.WriteNumber(s_outputTokens, u.TotalOutput);
        w.WriteStartObject(s_outputTokensDetails);
        w.WriteNumber(s_reasoningTokens, u.Reasoning);
        w.WriteEndObject();
        w.WriteNumber(s_totalTokens, u.OpenAIPrompt + u.TotalOutput);
        w.WriteEndObject();
    }
}
