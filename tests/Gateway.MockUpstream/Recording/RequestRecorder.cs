using System.Buffers;
using Microsoft.Net.Http.Headers;

namespace Gateway.MockUpstream.Recording;

/// <summary>The last N requests in a ring buffer. One short lock per request; off entirely with Mock:Record=false.</summary>
public sealed class RequestRecorder
{
    private readonly RecordedRequest?[] _ring;
    private readonly Lock _lock = new();
    private int _next;
    private int _count;
    private long _sequence;

    public RequestRecorder(bool enabled, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Enabled = enabled;
        _ring = new RecordedRequest?[capacity];
    }

    public bool Enabled { get; }

    internal void Record(HttpRequest request, in ReadOnlySequence<byte> body)
    {
        if (!Enabled) return;
        var headers = new Dictionary<string, string>(request.Headers.Count, StringComparer.Ordinal);
        var credentials = new List<RecordedCredential>(1);
        foreach (var (name, value) in request.Headers)
        {
            if (name.Equals(HeaderNames.Authorization, StringComparison.OrdinalIgnoreCase))
            {
                var v = value.ToString();
                var space = v.IndexOf(' ', StringComparison.Ordinal);
                credentials.Add(space > 0
                    ? new RecordedCredential("authorization", v[..space], RecordedRequest.HashCredential(v[(space + 1)..].Trim()))
                    : new RecordedCredential("authorization", null, RecordedRequest.HashCredential(v)));
            }
            else if (name.Equals("x-api-key", StringComparison.OrdinalIgnoreCase) || name.Equals("api-key", StringComparison.OrdinalIgnoreCase))
            {
                credentials.Add(new RecordedCredential(name.ToLowerInvariant(), null, RecordedRequest.HashCredential(value.ToString())));
            }
            else if (!name.Equals(HeaderNames.Cookie, StringComparison.OrdinalIgnoreCase)
                     && !name.Equals(HeaderNames.ProxyAuthorization, StringComparison.OrdinalIgnoreCase))
            {
                headers[name.ToLowerInvariant()] = value.ToString();
            }
        }
        var entry = new RecordedRequest
        {
            Timestamp = DateTimeOffset.UtcNow,
            Method = request.Method,
            Path = request.Path.Value ?? "",
            Query = request.QueryString.Value ?? "",
            Headers = headers,
            Credentials = credentials,
            Body = body.ToArray(),
        };
        lock (_lock)
        {
            _ring[_next] = entry with { Sequence = ++_sequence };
            _next = (_next + 1) % _ring.Length;
            if (_count < _ring.Length) _count++;
        }
    }

    /// <summary>Recorded requests, oldest first.</summary>
    public IReadOnlyList<RecordedRequest> Snapshot()
    {
        lock (_lock)
        {
            var result = new RecordedRequest[_count];
            var start = (_next - _count + _ring.Length) % _ring.Length;
            for (var i = 0; i < _count; i++) result[i] = _ring[(start + i) % _ring.Length]!;
            return result;
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            Array.Clear(_ring);
            _next = 0;
            _count = 0;
            _sequence = 0;
        }
    }
}
