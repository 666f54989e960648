namespace Gateway.Operator.OAuth;

/// <summary>An OAuth account's Secret as read, with the version a write must match (resourceVersion, or a file's content hash).</summary>
public sealed record VersionedSecret(IReadOnlyDictionary<string, byte[]> Data, string Version);

public enum SecretWriteResult
{
    Written,
    /// <summary>The Secret changed since it was read (another writer): re-read and decide again.</summary>
    Conflict,
    NotFound,
}

/// <summary>
/// Reads and writes back the Secret that holds an OAuth account's tokens. A write replaces one data key and
/// succeeds only if the Secret is still at the version that was read (optimistic concurrency).
/// </summary>
public interface IOAuthSecretStore
{
    /// <summary>The Secret with its version, or null when it does not exist. <paramref name="fresh"/> asks for the
    /// authoritative copy (the API server, not a cache) before a refresh.</summary>
    Task<VersionedSecret?> ReadAsync(string @namespace, string name, bool fresh, CancellationToken cancellationToken);

    Task<SecretWriteResult> WriteAsync(string @namespace, string name, string expectedVersion, string key, byte[] value, CancellationToken cancellationToken);
}
