using Gateway.Core.Projection;
using Gateway.Core.Usage;
using Gateway.Proxy.Errors;

namespace Gateway.Proxy.Metering;

/// <summary>What admission needs to know about a request.</summary>
public readonly record struct AdmissionRequest(
    string RequestId,
    KeyProjection Key,
    UserProjection User,
    string Model,
    long EstimatedInputTokens,
    long MaxOutputTokens,
    long ReservationMicros);

/// <summary>Outcome of admission. When rejected, <see cref="Error"/> and the headers say why.</summary>
public sealed class Admission
{
    public static readonly Admission Allowed = new();

    public bool IsAllowed => Error is null;
    public ProxyError? Error { get; init; }
    /// <summary>Specific message for the rejection (limit and reset), or null for the error's default.</summary>
    public string? Message { get; init; }
    public double? RetryAfterSeconds { get; init; }
    /// <summary>x-ratelimit-* headers to return (name, value).</summary>
    public KeyValuePair<string, string>[]? Headers { get; init; }
    /// <summary>Opaque reservation handle for settlement (the enforcer's state), or null.</summary>
    public object? Reservation { get; init; }
    public long ReservedMicros { get; init; }
}

/// <summary>
/// Admission before forwarding and settlement after: one Redis round trip each. Settlement writes the
/// usage event; it runs exactly once per admitted request.
/// </summary>
public interface IRequestMeter
{
    ValueTask<Admission> AdmitAsync(AdmissionRequest request, CancellationToken cancellationToken);

    ValueTask SettleAsync(AdmissionRequest request, Admission admission, UsageEvent usage, long costMicros, CancellationToken cancellationToken);
}
