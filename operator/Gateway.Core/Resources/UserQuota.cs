using System.ComponentModel;

namespace Gateway.Core.Resources;

/// <summary>A user, their budget, grants and limits.</summary>
[Description("UserQuota is a TokenGate user: identity, budget, one-time grants, limits and the models and upstreams they may use.")]
public sealed class UserQuota : CustomResource<UserQuotaSpec, UserQuotaStatus>
{
    public UserQuota() => Kind = "UserQuota";
}

public sealed class UserQuotaSpec
{
    [Description("Who the user is.")]
    public UserIdentity User { get; set; } = new();
    [Description("Recurring spend budget.")]
    public Budget? Budget { get; set; }
    [Description("One-time credits; each id credits the balance exactly once, ever.")]
    public List<Grant> Grants { get; set; } = [];
    [Description("Discount applied to this user's costs, as the fraction paid: 0 < rate <= 1 (1 = full price).")]
    public decimal? DiscountRate { get; set; }
    [Description("Rate and concurrency limits across all of the user's keys.")]
    public RateLimits? Limits { get; set; }
    [Description("Model name globs the user may call; empty means all.")]
    public List<string> AllowedModels { get; set; } = [];
    [Description("Label selector over UpstreamAccounts this user's traffic may use.")]
    public LabelSelector? UpstreamSelector { get; set; }
    [Description("Maximum number of ApiKeys owned by this user.")]
    public int? MaxKeys { get; set; }
    [Description("When true, every key of the user is rejected.")]
    public bool Suspended { get; set; }
}

public sealed class UserIdentity
{
    [Description("Login name of the user.")]
    public string Name { get; set; } = "";
    [Description("E-mail address of the user.")]
    public string Email { get; set; } = "";
    [Description("Name shown in the portal.")]
    public string? DisplayName { get; set; }
}

/// <summary>Budget periods.</summary>
public static class BudgetPeriods
{
    public const string None = "none";
    public const string Daily = "daily";
    public const string Weekly = "weekly";
    public const string Monthly = "monthly";
    public static readonly string[] All = [None, Daily, Weekly, Monthly];
}

public sealed class Budget
{
    [Description("Budget amount in USD per period.")]
    public decimal Amount { get; set; }
    [Description("Reset period: none, daily, weekly or monthly (calendar-aligned).")]
    public string Period { get; set; } = BudgetPeriods.Monthly;
    [Description("IANA time zone for calendar-aligned resets, e.g. Europe/Berlin.")]
    public string Timezone { get; set; } = "UTC";
}

public sealed class Grant
{
    [Description("Unique id of the grant; credited once, ever.")]
    public string Id { get; set; } = "";
    [Description("Amount in USD.")]
    public decimal Amount { get; set; }
    [Description("Why the grant was given.")]
    public string? Reason { get; set; }
}

/// <summary>Request, token and concurrency limits.</summary>
public class RateLimits
{
    [Description("Maximum requests per minute.")]
    public int? RequestsPerMinute { get; set; }
    [Description("Maximum requests per day.")]
    public int? RequestsPerDay { get; set; }
    [Description("Maximum tokens per minute.")]
    public long? TokensPerMinute { get; set; }
    [Description("Maximum tokens per day.")]
    public long? TokensPerDay { get; set; }
    [Description("Maximum concurrent requests in flight.")]
    public int? MaxConcurrent { get; set; }
}

/// <summary>metav1.LabelSelector.</summary>
public sealed class LabelSelector
{
    [Description("Labels that must all match exactly.")]
    public Dictionary<string, string>? MatchLabels { get; set; }
    [Description("Set-based requirements that must all hold.")]
    public List<LabelSelectorRequirement>? MatchExpressions { get; set; }
}

public sealed class LabelSelectorRequirement
{
    [Description("Label key.")]
    public string Key { get; set; } = "";
    [Description("In, NotIn, Exists or DoesNotExist.")]
    public string Operator { get; set; } = "In";
    [Description("Values for In and NotIn.")]
    public List<string>? Values { get; set; }
}

public sealed class UserQuotaStatus
{
    [Description("The .metadata.generation last reconciled.")]
    public long? ObservedGeneration { get; set; }
    [Description("Conditions; Ready summarises them.")]
    public List<Condition> Conditions { get; set; } = [];
    [Description("Current balance in USD (sum of the ledger).")]
    public decimal? Balance { get; set; }
    [Description("Spend in the current budget period, USD.")]
    public decimal? SpentThisPeriod { get; set; }
    [Description("When the current budget period resets.")]
    public DateTimeOffset? PeriodResetsAt { get; set; }
    [Description("Number of ApiKeys owned by this user.")]
    public int? KeyCount { get; set; }
    [Description("Portal enrollment: Invited or Enrolled.")]
    public string? Enrollment { get; set; }
}
