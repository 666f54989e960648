using Gateway.Core.Enforcement;

namespace Gateway.Proxy.Errors;

/// <summary>Maps the enforcer's rejection reasons to provider-shaped errors with specific messages.</summary>
public static class Rejections
{
    private static readonly ProxyError RequestsLimited = new(429, "requests", "rate_limit_exceeded", "rate_limit_error", "", "rate_limited");
    private static readonly ProxyError TokensLimited = new(429, "tokens", "rate_limit_exceeded", "rate_limit_error", "", "rate_limited");
    private static readonly ProxyError ConcurrencyLimited = new(429, "requests", "rate_limit_exceeded", "rate_limit_error", "", "concurrency_limited");
    private static readonly ProxyError QuotaExhausted = new(429, "insufficient_quota", "insufficient_quota", "rate_limit_error", "", "insufficient_quota");

    public static (ProxyError Error, string Message) For(RejectionReason reason) => reason switch
    {
        RejectionReason.KeyRpm => (RequestsLimited, "Rate limit reached: this API key's requests per minute. Retry after the time in Retry-After."),
        RejectionReason.KeyRpd => (RequestsLimited, "Rate limit reached: this API key's requests per day. Retry after the time in Retry-After."),
        RejectionReason.UserRpm => (RequestsLimited, "Rate limit reached: your requests per minute (across all your keys). Retry after the time in Retry-After."),
        RejectionReason.UserRpd => (RequestsLimited, "Rate limit reached: your requests per day (across all your keys). Retry after the time in Retry-After."),
        RejectionReason.KeyTpm => (TokensLimited, "Rate limit reached: this API key's tokens per minute (prompt estimate plus max tokens). Retry later or lower max tokens."),
        RejectionReason.KeyTpd => (TokensLimited, "Rate limit reached: this API key's tokens per day. Retry after the time in Retry-After."),
        RejectionReason.UserTpm => (TokensLimited, "Rate limit reached: your tokens per minute (across all your keys). Retry later or lower max tokens."),
        RejectionReason.UserTpd => (TokensLimited, "Rate limit reached: your tokens per day (across all your keys). Retry after the time in Retry-After."),
        RejectionReason.KeyConcurrency => (ConcurrencyLimited, "Too many concurrent requests on this API key. Wait for one to finish and retry."),
        RejectionReason.UserConcurrency => (ConcurrencyLimited, "Too many concurrent requests across your keys. Wait for one to finish and retry."),
        RejectionReason.KeyTokenLimit => (QuotaExhausted, "This API key has used its lifetime token limit. Ask your platform team to raise it or use another key."),
        RejectionReason.KeySpendLimit => (QuotaExhausted, "This API key has reached its lifetime spend limit. Ask your platform team to raise it or use another key."),
        RejectionReason.InsufficientBalance => (QuotaExhausted, "Your balance is too low for this request (its cost is reserved up front from the prompt size and max tokens). Lower max tokens or ask for a grant."),
        RejectionReason.BudgetExhausted => (QuotaExhausted, "Your budget for the current period is exhausted. It resets at the start of the next period."),
        _ => (QuotaExhausted, "The request was refused by a quota rule."),
    };
}
