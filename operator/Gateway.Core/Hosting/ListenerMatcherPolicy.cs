using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Matching;

namespace Gateway.Core.Hosting;

/// <summary>Endpoint metadata: the listeners an endpoint answers on. Endpoints without it are public-only.</summary>
public sealed class ListenerScopeMetadata(bool onPublic, bool onManagement)
{
    public static readonly ListenerScopeMetadata ManagementOnly = new(onPublic: false, onManagement: true);
    public static readonly ListenerScopeMetadata Everywhere = new(onPublic: true, onManagement: true);

    public bool OnPublic { get; } = onPublic;
    public bool OnManagement { get; } = onManagement;
}

/// <summary>Marks endpoints for the management listener.</summary>
public static class ListenerEndpointConventions
{
    /// <summary>Served on the management listener only (e.g. /metrics); the public listener answers 404.</summary>
    public static TBuilder OnManagementListenerOnly<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(ListenerScopeMetadata.ManagementOnly);

    /// <summary>Served on every listener (e.g. /healthz and /readyz, which kubelets probe on either port).</summary>
    public static TBuilder OnEveryListener<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(ListenerScopeMetadata.Everywhere);
}

/// <summary>
/// Routing policy that drops candidate endpoints not served on the connection's listener, so /metrics on a
/// public port falls through to that port's 404 (the proxy's provider-shaped one) and the management port
/// serves nothing but its own endpoints. Decided on the listener the connection came in on, never on the
/// Host header, which a client controls. A connection without <see cref="ListenerFeature"/> (a test server,
/// a host that did not use <see cref="Listeners"/>) is not filtered.
/// </summary>
public sealed class ListenerMatcherPolicy : MatcherPolicy, IEndpointSelectorPolicy
{
    // After the built-in policies (host, HTTP method), which use small or negative orders.
    public override int Order => 10_000;

    public bool AppliesToEndpoints(IReadOnlyList<Endpoint> endpoints) => true;

    public Task ApplyAsync(HttpContext httpContext, CandidateSet candidates)
    {
        var listener = httpContext.Features.Get<ListenerFeature>();
        if (listener is null) return Task.CompletedTask;
        var management = listener.Kind == ListenerKind.Management;
        for (var i = 0; i < candidates.Count; i++)
        {
            if (!candidates.IsValidCandidate(i)) continue;
            var scope = candidates[i].Endpoint.Metadata.GetMetadata<ListenerScopeMetadata>();
            var allowed = scope is null ? !management : management ? scope.OnManagement : scope.OnPublic;
            if (!allowed) candidates.SetValidity(i, false);
        }
        return Task.CompletedTask;
    }
}
