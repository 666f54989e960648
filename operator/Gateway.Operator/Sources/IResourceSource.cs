using Gateway.Core.Resources;

namespace Gateway.Operator.Sources;

/// <summary>
/// Where the operator gets desired state and puts what it issues. Implemented by the file source
/// (a folder of YAML, no cluster) and the Kubernetes source; the reconcilers are the same for both.
/// </summary>
public interface IResourceSource
{
    /// <summary>Reads a Secret's data, or null when it does not exist.</summary>
    Task<IReadOnlyDictionary<string, byte[]>?> GetSecretAsync(string @namespace, string name, CancellationToken cancellationToken);

    /// <summary>Creates or replaces a Secret the operator owns (issued keys, invites).</summary>
    Task ApplySecretAsync(IssuedSecret secret, CancellationToken cancellationToken);

    /// <summary>Deletes a Secret the operator owns; no error when it is gone.</summary>
    Task DeleteSecretAsync(string @namespace, string name, CancellationToken cancellationToken);

    /// <summary>Writes the status of a resource (status subresource in Kubernetes).</summary>
    Task WriteStatusAsync(string kind, ObjectMeta metadata, object status, CancellationToken cancellationToken);
}

/// <summary>A Secret written by the operator, owned by a resource.</summary>
public sealed record IssuedSecret(string Namespace, string Name, IReadOnlyDictionary<string, string> StringData, OwnerReference Owner)
{
    public Dictionary<string, string> Labels { get; init; } = new() { ["app.kubernetes.io/managed-by"] = "tokengate" };
}
