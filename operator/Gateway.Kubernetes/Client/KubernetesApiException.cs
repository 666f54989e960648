using System.Net;

namespace Gateway.Kubernetes.Client;

/// <summary>An error returned by the Kubernetes API, carrying the server's Status.</summary>
public class KubernetesApiException : Exception
{
    public KubernetesApiException(KubernetesStatus status)
        : base(status.Message is { Length: > 0 } m ? m : $"Kubernetes API returned {status.Code} {status.Reason}")
    {
        Status = status;
    }

    public KubernetesApiException() : this(new KubernetesStatus()) { }

    public KubernetesApiException(string message) : base(message) => Status = new KubernetesStatus { Message = message };

    public KubernetesApiException(string message, Exception inner) : base(message, inner) => Status = new KubernetesStatus { Message = message };

    public KubernetesStatus Status { get; }

    /// <summary>HTTP status code (Status.code).</summary>
    public int Code => Status.Code;

    /// <summary>Machine-readable reason, e.g. NotFound, Conflict, AlreadyExists, Expired, Invalid.</summary>
    public string? Reason => Status.Reason;

    /// <summary>Maps a Status to the most specific exception type.</summary>
    public static KubernetesApiException FromStatus(KubernetesStatus status) => (status.Code, status.Reason) switch
    {
        (404, _) => new KubernetesNotFoundException(status),
        (409, "AlreadyExists") => new KubernetesAlreadyExistsException(status),
        (409, _) => new KubernetesConflictException(status),
        (410, _) => new KubernetesGoneException(status),
        (_, "Expired" or "Gone") => new KubernetesGoneException(status),
        (403, _) => new KubernetesForbiddenException(status),
        (401, _) => new KubernetesUnauthorizedException(status),
        (422, _) => new KubernetesInvalidException(status),
        _ => new KubernetesApiException(status),
    };

    internal static KubernetesStatus StatusFor(HttpStatusCode code) => new()
    {
        Kind = "Status",
        Status = "Failure",
        Code = (int)code,
        Reason = code.ToString(),
        Message = $"Kubernetes API returned {(int)code} {code}",
    };
}

/// <summary>404: the object (or resource type) does not exist.</summary>
public sealed class KubernetesNotFoundException(KubernetesStatus status) : KubernetesApiException(status);

/// <summary>409 Conflict: a stale resourceVersion or a failed precondition; re-read and retry.</summary>
public sealed class KubernetesConflictException(KubernetesStatus status) : KubernetesApiException(status);

/// <summary>409 AlreadyExists: create of a name that is taken.</summary>
public sealed class KubernetesAlreadyExistsException(KubernetesStatus status) : KubernetesApiException(status);

/// <summary>410 Gone / Expired: the requested resourceVersion or continue token is no longer available; relist.</summary>
public sealed class KubernetesGoneException(KubernetesStatus status) : KubernetesApiException(status);

/// <summary>403: RBAC denies the request.</summary>
public sealed class KubernetesForbiddenException(KubernetesStatus status) : KubernetesApiException(status);

/// <summary>401: the credentials were rejected.</summary>
public sealed class KubernetesUnauthorizedException(KubernetesStatus status) : KubernetesApiException(status);

/// <summary>422 Invalid: the object failed validation; <see cref="Causes"/> name the fields.</summary>
public sealed class KubernetesInvalidException(KubernetesStatus status) : KubernetesApiException(status)
{
    public IReadOnlyList<StatusCause> Causes => Status.Details?.Causes ?? [];
}
