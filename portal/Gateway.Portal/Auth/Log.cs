namespace Gateway.Portal.Auth;

/// <summary>Portal authentication log messages. Only user ids and outcomes: never logins, passwords, codes or tokens.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Portal sign-in succeeded for user {UserId} (second factor: {Factor}).")]
    public static partial void SignInSucceeded(ILogger logger, Guid userId, string factor);

    [LoggerMessage(2, LogLevel.Information, "Portal sign-in refused for user {UserId}: {Result}.")]
    public static partial void SignInRefused(ILogger logger, Guid? userId, string result);

    [LoggerMessage(3, LogLevel.Warning, "User {UserId} locked out of the portal until {LockedUntil:o} after repeated failed sign-ins.")]
    public static partial void LockedOut(ILogger logger, Guid userId, DateTimeOffset lockedUntil);

    [LoggerMessage(4, LogLevel.Information, "User {UserId} completed portal enrolment.")]
    public static partial void Enrolled(ILogger logger, Guid userId);

    [LoggerMessage(5, LogLevel.Information, "Enrolment step refused: {Reason}.")]
    public static partial void EnrolmentRefused(ILogger logger, string reason);

    [LoggerMessage(6, LogLevel.Warning, "Too many sign-in or enrolment requests from {Ip}; answered 429.")]
    public static partial void RateLimited(ILogger logger, string ip);

    [LoggerMessage(7, LogLevel.Information, "User {UserId}: {Change}.")]
    public static partial void SecurityChanged(ILogger logger, Guid userId, string change);

    [LoggerMessage(8, LogLevel.Information, "User {UserId}: security change refused ({Reason}).")]
    public static partial void SecurityChangeRefused(ILogger logger, Guid userId, string reason);
}
