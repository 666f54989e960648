namespace Gateway.Core.Projection;

/// <summary>
/// Redis no longer holds the projection a request needs (it was flushed, or restarted without its data) and the
/// operator has not rebuilt it yet. The proxy answers 503 (retry shortly), never "invalid key" or "no balance".
/// </summary>
public sealed class ProjectionMissingException() : Exception("The Redis projection is being rebuilt after Redis lost its data.");
