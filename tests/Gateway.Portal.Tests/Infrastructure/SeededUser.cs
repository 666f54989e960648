namespace Gateway.Portal.Tests.Infrastructure;

/// <summary>An enrolled user created through the real schema, with the secrets a test needs to sign in.</summary>
public sealed record SeededUser(Guid Id, string Login, string Email, string Password, string TotpSecret, IReadOnlyList<string> RecoveryCodes, bool Admin);

/// <summary>An invited (not yet enrolled) user and the plaintext invite token the operator would have put in its Secret.</summary>
public sealed record InvitedUser(Guid Id, string Login, string Email, string InviteToken)
{
    public string InvitePath => "/invite/" + InviteToken;
}
