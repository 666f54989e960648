using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Proxy.Auth;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Routing;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Endpoints;

/// <summary>Endpoints the proxy answers itself: the key's models and the key's own usage.</summary>
public sealed class InfoEndpoints(ProxyRequestHandler handler, UpstreamCatalog catalog, IRedisClient redis, ProjectionKeys keys, Enforcer enforcer)
{
    /// <summary>GET /v1/models: the models this key may use (served by an account its owner may reach).
    /// Anthropic's list shape when the client sent anthropic-version, else OpenAI's.</summary>
    public async Task ModelsAsync(HttpContext context)
    {
        var start = Stopwatch.GetTimestamp();
        var dialect = context.Request.Headers.ContainsKey("anthropic-version") ? ApiDialect.Anthropic : ApiDialect.OpenAI;
        var caller = await handler.AuthenticateAsync(context, dialect, start).ConfigureAwait(false);
        if (caller is not { } c) return;
        UpstreamSnapshot snapshot;
        try
        {
            snapshot = await catalog.GetAsync(context.RequestAborted).ConfigureAwait(false);
        }
        catch (ProjectionMissingException)
        {
            await handler.RejectAsync(context, dialect, ProxyError.ProjectionRebuilding, start).ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is RedisConnectionException or TimeoutException or RedisServerException { IsTransient: true })
        {
            await handler.RejectAsync(context, dialect, ProxyError.RedisUnavailable, start).ConfigureAwait(false);
            return;
        }
        var models = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var account in snapshot.Accounts)
        {
            if (account.Disabled || !UpstreamSelector.MayUse(c.User, account.Labels)) continue;
            foreach (var m in account.Models)
            {
                if (!string.IsNullOrEmpty(m.Name) && ModelGlob.Allowed(c.Key.AllowedModels, m.Name) && ModelGlob.Allowed(c.User.AllowedModels, m.Name)) models.Add(m.Name);
            }
        }
        ProxyRequestHandler.SetOverheadHeader(context.Response, Stopwatch.GetTimestamp() - start);
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteStartObject();
        if (dialect == ApiDialect.Anthropic)
        {
            writer.WriteStartArray("data"u8);
            foreach (var m in models)
            {
                writer.WriteStartObject();
                writer.WriteString("type"u8, "model"u8);
                writer.WriteString("id"u8, m);
                writer.WriteString("display_name"u8, m);
                writer.WriteString("created_at"u8, "1970-01-01T00:00:00Z"u8);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteBoolean("has_more"u8, false);
            if (models.Count > 0) { writer.WriteString("first_id"u8, models.Min); writer.WriteString("last_id"u8, models.Max); }
            else { writer.WriteNull("first_id"u8); writer.WriteNull("last_id"u8); }
        }
        else
        {
            writer.WriteString("object"u8, "list"u8);
            writer.WriteStartArray("data"u8);
            foreach (var m in models)
            {
                writer.WriteStartObject();
                writer.WriteString("id"u8, m);
                writer.WriteString("object"u8, "model"u8);
                writer.WriteNumber("created"u8, 0);
                writer.WriteString("owned_by"u8, "tokengate"u8);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        writer.WriteEndObject();
    }

    /// <summary>GET /v1/usage: the calling key's lifetime usage and limits, and its owner's balance and budget.</summary>
    public async Task UsageAsync(HttpContext context)
    {
        var start = Stopwatch.GetTimestamp();
        var caller = await handler.AuthenticateAsync(context, ApiDialect.OpenAI, start).ConfigureAwait(false);
        if (caller is not { } c) return;
        var now = DateTimeOffset.UtcNow;
        var period = BudgetCalendar.CurrentPeriod(c.User.Budget, now);
        var budgetKey = keys.BudgetSpent(c.User.UserId, c.User.Budget is null || period is null ? "none" : period.Value.Id);
        RespValue lifetime, balance, spent;
        LeaseHoldings held;
        try
        {
            // Issued together: the client pipelines them on one connection.
            var lt = redis.ExecuteAsync("HMGET", [keys.KeyLifetime(c.User.UserId, c.Key.KeyId), "tokens", "spend"], context.RequestAborted);
            var bt = redis.ExecuteAsync("GET", [keys.Balance(c.User.UserId)], context.RequestAborted);
            var st = redis.ExecuteAsync("GET", [budgetKey], context.RequestAborted);
            // Quota leases count their whole slice when granted: what they hold unused is not usage (added back below).
            var ht = enforcer.LeaseHoldingsAsync(c.User.UserId, c.Key.KeyId, budgetKey, context.RequestAborted);
            lifetime = await lt.ConfigureAwait(false);
            balance = await bt.ConfigureAwait(false);
            spent = await st.ConfigureAwait(false);
            held = await ht.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisConnectionException or TimeoutException or RedisServerException { IsTransient: true })
        {
            await handler.RejectAsync(context, ApiDialect.OpenAI, ProxyError.RedisUnavailable, start).ConfigureAwait(false);
            return;
        }
        if (balance.IsNull)
        {
            // Every projected user has a balance: without one, Redis lost the projection and it is being rebuilt.
            await handler.RejectAsync(context, ApiDialect.OpenAI, ProxyError.ProjectionRebuilding, start).ConfigureAwait(false);
            return;
        }
        var tokens = Math.Max(0, ParseLong(lifetime.Items.Count > 0 ? lifetime.Items[0] : RespValue.Nil) - held.KeyTokens);
        var spendMicros = Math.Max(0, ParseLong(lifetime.Items.Count > 1 ? lifetime.Items[1] : RespValue.Nil) - held.KeyMoney);
        var balanceMicros = ParseLong(balance) + held.Money;
        var spentMicros = Math.Max(0, ParseLong(spent) - held.BudgetMoney);

        ProxyRequestHandler.SetOverheadHeader(context.Response, Stopwatch.GetTimestamp() - start);
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("object"u8, "tokengate.usage"u8);
        writer.WriteStartObject("key"u8);
        writer.WriteString("name"u8, c.Key.Name);
        if (c.Key.KeyPrefix is not null) writer.WriteString("prefix"u8, c.Key.KeyPrefix);
        writer.WriteNumber("version"u8, c.Key.Version);
        writer.WriteNumber("tokens"u8, tokens);
        writer.WriteNumber("spend_usd"u8, Money.FromMicros(spendMicros));
        if (c.Key.ExpiresAt is { } exp) writer.WriteString("expires_at"u8, exp);
        WriteLimits(writer, c.Key.Limits);
        if (c.Key.Limits is { } kl)
        {
            if (kl.TokenLimit is { } tl) writer.WriteNumber("tokens_remaining"u8, Math.Max(0, tl - tokens));
            if (kl.SpendLimit is { } sl) writer.WriteNumber("spend_remaining_usd"u8, Math.Max(0, sl - Money.FromMicros(spendMicros)));
        }
        if (c.Key.AllowedModels.Count > 0) WriteList(writer, "allowed_models", c.Key.AllowedModels);
        writer.WriteEndObject();
        writer.WriteStartObject("user"u8);
        writer.WriteString("name"u8, c.User.Name);
        writer.WriteNumber("balance_usd"u8, Money.FromMicros(balanceMicros));
        if (c.User.Budget is { } b)
        {
            writer.WriteStartObject("budget"u8);
            writer.WriteNumber("amount_usd"u8, b.Amount);
            writer.WriteString("period"u8, b.Period);
            writer.WriteNumber("spent_usd"u8, Money.FromMicros(spentMicros));
            writer.WriteNumber("remaining_usd"u8, Math.Max(0, b.Amount - Money.FromMicros(spentMicros)));
            if (period is { } p) writer.WriteString("resets_at"u8, p.End);
            writer.WriteEndObject();
        }
        WriteLimits(writer, c.User.Limits);
        if (c.User.AllowedModels.Count > 0) WriteList(writer, "allowed_models", c.User.AllowedModels);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static long ParseLong(RespValue v)
    {
        if (v.IsNull) return 0;
        return long.TryParse(v.AsString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : 0;
    }

    private static void WriteLimits(Utf8JsonWriter writer, RateLimits? limits)
    {
        if (limits is null) return;
        writer.WriteStartObject("limits"u8);
        if (limits.RequestsPerMinute is { } rpm) writer.WriteNumber("requests_per_minute"u8, rpm);
        if (limits.RequestsPerDay is { } rpd) writer.WriteNumber("requests_per_day"u8, rpd);
        if (limits.TokensPerMinute is { } tpm) writer.WriteNumber("tokens_per_minute"u8, tpm);
        if (limits.TokensPerDay is { } tpd) writer.WriteNumber("tokens_per_day"u8, tpd);
        if (limits.MaxConcurrent is { } mc) writer.WriteNumber("max_concurrent"u8, mc);
        if (limits is KeyLimits kl)
        {
            if (kl.TokenLimit is { } tl) writer.WriteNumber("token_limit"u8, tl);
            if (kl.SpendLimit is { } sl) writer.WriteNumber("spend_limit_usd"u8, sl);
        }
        writer.WriteEndObject();
    }

    private static void WriteList(Utf8JsonWriter writer, string name, List<string> items)
    {
        writer.WriteStartArray(name);
        foreach (var i in items) writer.WriteStringValue(i);
        writer.WriteEndArray();
    }
}
