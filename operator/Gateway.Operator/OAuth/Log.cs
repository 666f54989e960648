namespace Gateway.Operator.OAuth;

// Messages name accounts, Secrets and the provider's error code/description: never a token.
internal static partial class Log
{
    [LoggerMessage(700, LogLevel.Information, "Refreshed the OAuth token of {Account}; the new access token expires at {ExpiresAt}")]
    public static partial void Refreshed(ILogger logger, string account, DateTimeOffset? expiresAt);

    [LoggerMessage(701, LogLevel.Warning, "OAuth refresh of {Account} failed ({Kind}): {Error}: {Description}; next attempt in {RetryIn}")]
    public static partial void RefreshFailed(ILogger logger, string account, string kind, string error, string description, TimeSpan retryIn);

    [LoggerMessage(702, LogLevel.Information, "Wrote the OAuth token pair of {Account} that the provider issued at {AcceptedAt} but that had not reached Secret {Secret}")]
    public static partial void Recovered(ILogger logger, string account, DateTimeOffset acceptedAt, string secret);

    [LoggerMessage(703, LogLevel.Warning, "Secret {Secret} of {Account} was given other tokens while a refreshed pair waited to be written; keeping the Secret's tokens")]
    public static partial void PendingSuperseded(ILogger logger, string account, string secret);

    [LoggerMessage(704, LogLevel.Warning, "Could not write the refreshed OAuth tokens of {Account} to Secret {Secret}; the pair is kept and the write retried")]
    public static partial void WriteFailed(ILogger logger, string account, string secret, Exception exception);

    [LoggerMessage(705, LogLevel.Error, "OAuth refresh pass failed")]
    public static partial void PassFailed(ILogger logger, Exception exception);

    [LoggerMessage(706, LogLevel.Warning, "Secret {Secret} of {Account} disappeared before the refreshed tokens could be written")]
    public static partial void SecretGone(ILogger logger, string account, string secret);
}
