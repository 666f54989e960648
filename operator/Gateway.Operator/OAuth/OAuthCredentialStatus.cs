namespace Gateway.Operator.OAuth;

/// <summary>
/// What the refresh state means for an OAuth account's CredentialsValid condition. A refused refresh of the token
/// the Secret holds, or an expired access token, makes the credentials invalid (the account leaves the projection
/// and traffic moves to other accounts); a transient failure while the token is still valid only shows as a note.
/// </summary>
public static class OAuthCredentialStatus
{
    public sealed record Verdict((string Reason, string Message)? Problem, string? Note, DateTimeOffset? LastRefreshAt);

    public static Verdict Evaluate(OAuthAccountState state, string? refreshToken, DateTimeOffset? expiresAt, DateTimeOffset now, string secretName)
    {
        var failure = state.FailureFor(OAuthAuthFile.Fingerprint(refreshToken));
        if (failure is { Rejected: true } f)
        {
            return new Verdict(("RefreshRejected",
                $"The token endpoint rejected the refresh: {f.Error}: {f.Description} Sign the account in again and put the new tokens in Secret '{secretName}'."),
                null, state.LastRefreshAt);
        }
        if (expiresAt is { } e && e <= now)
        {
            var why = failure is null ? "it has not been refreshed yet" : $"the last refresh failed: {failure.Error}: {failure.Description}";
            return new Verdict(("TokenExpired", $"The OAuth access token expired at {e:O}; {why}."), null, state.LastRefreshAt);
        }
        var note = failure is null ? null : $"The last refresh attempt failed ({failure.Error}: {failure.Description}); retrying from {state.NextAttemptAt:O}.";
        return new Verdict(null, note, state.LastRefreshAt);
    }
}
