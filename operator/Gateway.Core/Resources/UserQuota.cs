using System.ComponentModel;
using System.ComponentModel.DataAnnotations;

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
    [Required]
    public UserIdentity User { get; set; } = new();
    [Description("Recurring spend budget.")]
    public Budget? Budget { get; set; }
    [Description("One-time credits; each id credits the balance exactly once, ever.")]
    [MaxLength(200), ListMapKeys("id")]
    [CelRule("self.all(g, self.exists_one(h, h.id == g.id))", Message = "grant ids must be unique: each id credits the balance once")]
    public List<Grant> Grants { get; set; } = [];
    [Description("Discount applied to this user's costs, as the fraction paid: 0 < rate <= 1 (1 = full price).")]
    [Range(0, 1, MinimumIsExclusive = true)]
    public decimal? DiscountRate { get; set; }
    [Description("Rate and concurrency limits across all of the user's keys.")]
    public RateLimits? Limits { get; set; }
    [Description("Model name globs the user may call; empty means all.")]
    public List<string> AllowedModels { get; set; } = [];
    [Description("Label selector over UpstreamAccounts this user's traffic may use (the shared pool); empty means all.")]
    public LabelSelector? UpstreamSelector { get; set; }
    [Description("Label selector over UpstreamAccounts dedicated to this user: they are tried first (by priority and weight), and the shared pool (upstreamSelector) only after them, while fallbackToShared is true.")]
    public LabelSelector? DedicatedSelector { get; set; }
    [Description("Whether requests go on to the shared pool when no dedicated account can take them (default true). Only used with dedicatedSelector.")]
    [DefaultValue(true)]
    public bool FallbackToShared { get; set; } = true;
    [Description("Maximum number of ApiKeys owned by this user.")]
    [Range(0, double.PositiveInfinity)]
    public int? MaxKeys { get; set; }
    [Description("When true, every key of the user is rejected.")]
    [DefaultValue(false)]
    public bool Suspended { get; set; }
    [Description("Self-service portal settings for this user.")]
    public PortalSettings? Portal { get; set; }
}

/// <summary>Portal roles.</summary>
public static class PortalRoles
{
    public const string User = "user";
    public const string Admin = "admin";
}

public sealed class PortalSettings
{
    [Description("Role in the self-service portal: user (own keys and usage) or admin (also a read-only overview of every user and upstream).")]
    [AllowedValues(PortalRoles.User, PortalRoles.Admin), DefaultValue(PortalRoles.User)]
    public string Role { get; set; } = PortalRoles.User;
}

public sealed class UserIdentity
{
    [Description("Login name of the user.")]
    [Required, MinLength(1), MaxLength(128)]
    public string Name { get; set; } = "";
    [Description("E-mail address of the user.")]
    [Required, MaxLength(254), RegularExpression(SchemaPatterns.Email)]
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
    [Required, Range(0, double.PositiveInfinity)]
    public decimal Amount { get; set; }
    [Description("Reset period: none, daily, weekly or monthly (calendar-aligned).")]
    [AllowedValues(BudgetPeriods.None, BudgetPeriods.Daily, BudgetPeriods.Weekly, BudgetPeriods.Monthly), DefaultValue(BudgetPeriods.Monthly)]
    public string Period { get; set; } = BudgetPeriods.Monthly;
    [Description("IANA time zone for calendar-aligned resets, e.g. Europe/Berlin.")]
    [MaxLength(64), RegularExpression(SchemaPatterns.TimeZone), DefaultValue("UTC")]
    public string Timezone { get; set; } = "UTC";
}

public sealed class Grant
{
    [Description("Unique id of the grant; credited once, ever.")]
    [Required, MaxLength(63), RegularExpression(SchemaPatterns.GrantId)]
    public string Id { get; set; } = "";
    [Description("Amount in USD.")]
    [Required, Range(0, double.PositiveInfinity)]
    public decimal Amount { get; set; }
    [Description("Why the grant was given.")]
    public string? Reason { get; set; }
}

/// <summary>Request, token and concurrency limits.</summary>
public class RateLimits
{
    [Description("Maximum requests per minute.")]
    [Range(1, double.PositiveInfinity)]
    public int? RequestsPerMinute { get; set; }
    [Description("Maximum requests per day.")]
    [Range(1, double.PositiveInfinity)]
    public int? RequestsPerDay { get; set; }
    [Description("Maximum tokens per minute.")]
    [Range(1, double.PositiveInfinity)]
    public long? TokensPerMinute { get; set; }
    [Description("Maximum tokens per day.")]
    [Range(1, double.PositiveInfinity)]
    public long? TokensPerDay { get; set; }
    [Description("Maximum concurrent requests in flight.")]
    [Range(1, double.PositiveInfinity)]
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
    [Required, MinLength(1), MaxLength(317)]
    public string Key { get; set; } = "";
    [Description("In, NotIn, Exists or DoesNotExist.")]
    [Required, AllowedValues("In", "NotIn", "Exists", "DoesNotExist")]
    public string Operator { get; set; } = "In";
    [Description("Values for In and NotIn.")]
    public List<string>? Values { get; set; }
}

public sealed class UserQuotaStatus
{
    [Description("The .metadata.generation last reconciled.")]
    public long? ObservedGeneration { get; set; }
    [Description("Conditions; Ready summarises them.")]
    [ListMapKeys("type")]
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
