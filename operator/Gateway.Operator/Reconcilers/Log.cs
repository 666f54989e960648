namespace Gateway.Operator.Reconcilers;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Issued key version {Version} for ApiKey {Key} (prefix {Prefix})")]
    public static partial void KeyIssued(ILogger logger, string key, int version, string prefix);

    [LoggerMessage(2, LogLevel.Information, "Revoked key version {Version} of ApiKey {Key}")]
    public static partial void KeyRevoked(ILogger logger, string key, int version);

    [LoggerMessage(3, LogLevel.Information, "Credited grant {GrantId} of {Amount} USD to {User}")]
    public static partial void GrantCredited(ILogger logger, string user, string grantId, decimal amount);

    [LoggerMessage(4, LogLevel.Warning, "{Kind} {Key} is not ready: {Reason}: {Message}")]
    public static partial void NotReady(ILogger logger, string kind, string key, string reason, string message);

    [LoggerMessage(5, LogLevel.Information, "Deleted {Kind} {Key}")]
    public static partial void Deleted(ILogger logger, string kind, string key);

    [LoggerMessage(6, LogLevel.Information, "Created invite for user {Key}")]
    public static partial void InviteCreated(ILogger logger, string key);
}
