namespace Gateway.Portal.Keys;

/// <summary>What the Keys page says about a key's state.</summary>
public enum KeyState
{
    Active,
    /// <summary>Disabled in its spec (by the platform team, or by the owner for a portal-created key).</summary>
    Disabled,
    /// <summary>Disabled by its owner in the portal (a GitOps key: the switch lives in PostgreSQL).</summary>
    DisabledByOwner,
    Expired,
    /// <summary>No version is live (e.g. over the user's maxKeys, or not reconciled yet).</summary>
    NotIssued,
}

/// <summary>One row of the Keys page. Never holds key material: only the display prefix.</summary>
public sealed record KeyListItem
{
    public required Guid Id { get; init; }
    public required string Name { get; init; }
    public string? Prefix { get; init; }
    public string? Description { get; init; }
    public required KeyState State { get; init; }
    public required bool PortalCreated { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? LastUsedAt { get; init; }
    public long Requests { get; init; }
    public long Tokens { get; init; }
    public decimal Spend { get; init; }
    public DateTimeOffset? ExpiresAt { get; init; }
    /// <summary>When the previous version stops working, while a rotation's grace period runs.</summary>
    public DateTimeOffset? PreviousVersionGraceEndsAt { get; init; }
    /// <summary>Kind of a request for this key still waiting for the operator, if any.</summary>
    public string? PendingRequest { get; init; }
    /// <summary>True when the owner may turn it back on (a spec disabled by the platform team is theirs).</summary>
    public bool CanEnable => State == KeyState.DisabledByOwner || (State == KeyState.Disabled && PortalCreated);
    public bool CanDisable => State is KeyState.Active or KeyState.Expired or KeyState.NotIssued;
}

/// <summary>The user's key allowance: live keys, pending creations and the UserQuota's maxKeys (null = no limit).</summary>
public sealed record KeyAllowance(int Keys, int PendingCreates, int? MaxKeys, bool Suspended)
{
    public bool CanCreate => !Suspended && (MaxKeys is not int max || Keys + PendingCreates < max);
}

/// <summary>
/// The outcome of asking for a key change: the request id, or why it was refused before reaching the operator.
/// The reason is an English template (the localization key) and its arguments.
/// </summary>
public sealed record KeyRequestSubmission(Guid? RequestId, string? ErrorTemplate = null, object[]? ErrorArguments = null)
{
    public static KeyRequestSubmission Refused(string template, params object[] arguments) => new(null, template, arguments);

    /// <summary>The reason in English.</summary>
    public string? Error => ErrorTemplate is null ? null : string.Format(System.Globalization.CultureInfo.InvariantCulture, ErrorTemplate, ErrorArguments ?? []);
}

/// <summary>What the reveal page can show for a request.</summary>
public enum RevealState
{
    NotFound,
    Pending,
    Failed,
    /// <summary>The request was done and needs no reveal (disable, enable, delete).</summary>
    Done,
    Revealed,
    AlreadyShown,
    Expired,
}

/// <summary>The reveal page's answer; <see cref="Key"/> is set only for <see cref="RevealState.Revealed"/>, once.</summary>
public sealed record RevealResult(RevealState State, string Kind = "", string? Key = null, string? Error = null, string? KeyName = null);
