using Microsoft.Extensions.Logging;

namespace Gateway.Core.Security;

// Key ids and account names only: key material and credentials are never logged.
public static partial class CredentialLog
{
    [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "Upstream credentials in Redis are encrypted with key {ActiveKeyId}; keys accepted for decryption: {KeyIds}")]
    public static partial void Encrypting(ILogger logger, string activeKeyId, string keyIds);

    [LoggerMessage(EventId = 901, Level = LogLevel.Warning, Message = "No credential key is configured and TokenGate:Credentials:AllowPlaintext is true: upstream credentials are stored in Redis in plaintext. Development only")]
    public static partial void Plaintext(ILogger logger);

    [LoggerMessage(EventId = 902, Level = LogLevel.Warning, Message = "Upstream account {Account} is skipped: its credential is encrypted with key {KeyId}, which this process does not have. Give it the same credential keys as the operator (TokenGate:Credentials)")]
    public static partial void UnknownKey(ILogger logger, string account, string keyId);

    [LoggerMessage(EventId = 903, Level = LogLevel.Warning, Message = "Upstream account {Account} is skipped: its credential (key {KeyId}) does not decrypt: altered, or written for another account")]
    public static partial void Invalid(ILogger logger, string account, string keyId);
}
