using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Core.Redis;

/// <summary>
/// One TCP connection to Redis. Callers write commands into an in-memory pipe under a lock (so the
/// order of the pending queue is the order on the wire); a send loop drains the pipe to the socket,
/// naturally batching whatever accumulated while the previous send was in flight; a receive loop parses
/// replies and completes pending commands first-in first-out. A connection is used until it breaks and
/// is then discarded: <see cref="ConnectionSupervisor"/> makes a new one.
/// </summary>
internal sealed class RespConnection
{
    private readonly Socket _socket;
    private readonly Pipe _output;
    private readonly PipeReader _input;
    private readonly ConcurrentQueue<PendingReply> _pending = new();
    private readonly Lock _writeLock = new();
    private readonly Action<RespValue>? _onPush;
    private readonly long _commandTimeoutTicks;
    private readonly TimeSpan _commandTimeout;
    private readonly string _endPoint;
    private readonly TaskCompletionSource<Exception> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ITimer _timeoutTimer;
    private bool _failed; // written under _writeLock

    private RespConnection(Socket socket, RespClientOptions options, Action<RespValue>? onPush)
    {
        _socket = socket;
        _onPush = onPush;
        _endPoint = options.EndPoint;
        _commandTimeout = options.CommandTimeout;
        _commandTimeoutTicks = ToStopwatchTicks(options.CommandTimeout);
        // pauseWriterThreshold 0: FlushAsync never waits, so writers can flush while holding the lock.
        // Memory is bounded by the command timeout instead: a connection that stops draining fails.
        _output = new Pipe(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
        _input = PipeReader.Create(
            new NetworkStream(socket, ownsSocket: false),
            new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
        var period = TimeSpan.FromTicks(Math.Clamp(options.CommandTimeout.Ticks / 5, TimeSpan.TicksPerMillisecond * 10, TimeSpan.TicksPerSecond));
        _timeoutTimer = TimeProvider.System.CreateTimer(static s => ((RespConnection)s!).CheckTimeout(), this, period, period);
    }

    /// <summary>False once the connection broke or was closed; it is never used again after that.</summary>
    public bool IsHealthy => !Volatile.Read(ref _failed);

    /// <summary>Completes with the reason when the connection breaks or is closed.</summary>
    public Task<Exception> Closed => _closed.Task;

    /// <summary>Connects, starts the loops and runs AUTH/SELECT. Throws only <see cref="RedisConnectionException"/>
    /// (or <see cref="OperationCanceledException"/> for <paramref name="cancellationToken"/>).</summary>
    public static async Task<RespConnection> ConnectAsync(
        RespClientOptions options, bool subscriber, Action<RespValue>? onPush, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            EndPoint endPoint = IPAddress.TryParse(options.Host, out var ip)
                ? new IPEndPoint(ip, options.Port)
                : new DnsEndPoint(options.Host, options.Port);
            await socket.ConnectAsync(endPoint, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new RedisConnectionException(
                $"Connecting to Redis at {options.EndPoint} timed out after {(long)options.ConnectTimeout.TotalMilliseconds} ms.");
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new RedisConnectionException($"Cannot connect to Redis at {options.EndPoint}: {e.SocketErrorCode}.", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new RespConnection(socket, options, onPush);
        connection.Start();
        try
        {
            if (options.Password is not null)
            {
                var auth = options.User is null
                    ? connection.SendAsync("AUTH", [options.Password], null, null, TimeSpan.Zero, default)
                    : connection.SendAsync("AUTH", [options.User, options.Password], null, null, TimeSpan.Zero, default);
                await auth.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            // Channels are not per database, and SELECT is not allowed in subscriber mode anyway.
            if (options.Database != 0 && !subscriber)
            {
                await connection.SendAsync("SELECT", [options.Database], null, null, TimeSpan.Zero, default)
                    .WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            return connection;
        }
        catch (RedisServerException e)
        {
            // The server's text ("WRONGPASS invalid username-password pair") never contains the secret.
            var error = new RedisConnectionException($"Redis at {options.EndPoint} rejected the connection set-up: {e.Message}", e);
            connection.Fail(error);
            throw error;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            var error = new RedisConnectionException(
                $"Redis at {options.EndPoint} did not answer the connection set-up within {(long)options.ConnectTimeout.TotalMilliseconds} ms.");
            connection.Fail(error);
            throw error;
        }
        catch (Exception e)
        {
            connection.Fail(e as RedisConnectionException ?? new RedisConnectionException("Redis connection set-up failed.", e));
            throw;
        }
    }

    /// <summary>
    /// Queues one command (<paramref name="command"/>, then <paramref name="head"/>, <paramref name="first"/>,
    /// <paramref name="second"/> as arguments). Never blocks on the network; fails fast once the connection broke.
    /// </summary>
    /// <param name="extraTimeout">Added to the command timeout, for commands that block on the server by design.</param>
    public Task<RespValue> SendAsync(
        string command,
        ReadOnlySpan<RedisArg> head,
        IReadOnlyList<RedisArg>? first,
        IReadOnlyList<RedisArg>? second,
        TimeSpan extraTimeout,
        CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<RespValue>(cancellationToken);
        var pending = new PendingReply(Stopwatch.GetTimestamp() + _commandTimeoutTicks + ToStopwatchTicks(extraTimeout));
        // Registered before the pending reply is published to the receive loop, so the loop sees the
        // registration when it completes the reply.
        if (cancellationToken.CanBeCanceled) pending.RegisterCancellation(cancellationToken);

        lock (_writeLock)
        {
            if (_failed)
            {
                pending.Fail(BrokenException()); // also drops the cancellation registration
                return pending.Task;
            }
            try
            {
                RespWriter.WriteCommand(_output.Writer, command, head, first, second);
            }
            catch (Exception e)
            {
                // Half a command may be in the buffer: the stream can no longer be trusted.
                FailLocked(new RedisConnectionException("Writing a Redis command failed.", e));
                throw;
            }
            _pending.Enqueue(pending);
            var flush = _output.Writer.FlushAsync(CancellationToken.None);
            if (flush.IsCompleted) flush.GetAwaiter().GetResult();
            else _ = flush.AsTask();
        }
        return pending.Task;
    }

    /// <summary>Breaks the connection: fails every pending command with <paramref name="reason"/> and closes the socket.</summary>
    public void Fail(Exception reason)
    {
        lock (_writeLock)
        {
            FailLocked(reason);
        }
    }

    private void FailLocked(Exception reason)
    {
        if (_failed) return;
        Volatile.Write(ref _failed, true);
        _timeoutTimer.Dispose();
        // No writer can be inside the pipe now: they all check _failed under the same lock.
        _output.Writer.Complete();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already reset by the peer; disposing below is all that is left.
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Dispose();
        // Each caller gets its own exception object: one instance thrown from many awaits would have
        // its stack trace rewritten concurrently.
        while (_pending.TryDequeue(out var pending)) pending.Fail(new RedisConnectionException(reason.Message, reason));
        _closed.TrySetResult(reason);
    }

    private void Start()
    {
        _ = Task.Run(SendLoopAsync);
        _ = Task.Run(ReceiveLoopAsync);
    }

    private async Task SendLoopAsync()
    {
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    var remaining = segment;
                    while (!remaining.IsEmpty)
                    {
                        var sent = await _socket.SendAsync(remaining, SocketFlags.None).ConfigureAwait(false);
                        remaining = remaining[sent..];
                    }
                }
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted) break;
            }
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await reader.CompleteAsync(e).ConfigureAwait(false);
            Fail(new RedisConnectionException($"Sending to Redis at {_endPoint} failed: {e.Message}", e));
        }
    }

    private async Task ReceiveLoopAsync()
    {
        Exception reason;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                while (RespParser.TryParse(ref buffer, out var value)) Dispatch(value);
                _input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    reason = new RedisConnectionException($"Redis at {_endPoint} closed the connection.");
                    break;
                }
            }
        }
        catch (RedisConnectionException e)
        {
            reason = e;
        }
        catch (Exception e)
        {
            reason = new RedisConnectionException($"The connection to Redis at {_endPoint} broke: {e.Message}", e);
        }
        await _input.CompleteAsync().ConfigureAwait(false);
        Fail(reason);
    }

    private void Dispatch(RespValue value)
    {
        if (_onPush is not null && IsPush(value))
        {
            _onPush(value);
            return;
        }
        if (!_pending.TryDequeue(out var pending))
            throw new RedisConnectionException("Redis protocol error: a reply arrived with no command waiting for it.");
        pending.Complete(value);
    }

    // In RESP2 subscriber mode the only unsolicited replies are message and pmessage arrays; the
    // subscribe/unsubscribe confirmations answer our commands one for one.
    private static bool IsPush(RespValue value)
    {
        if (value.Type != RespType.Array) return false;
        var items = value.Items;
        return items.Count >= 3 && (items[0].BytesEqual("message"u8) || items[0].BytesEqual("pmessage"u8));
    }

    private void CheckTimeout()
    {
        // Replies come back in order, so the oldest pending command is the first to time out.
        if (_pending.TryPeek(out var oldest) && Stopwatch.GetTimestamp() > oldest.Deadline)
        {
            Fail(new RedisConnectionException(
                $"A Redis command got no reply within {(long)_commandTimeout.TotalMilliseconds} ms; the connection to {_endPoint} is being re-established.",
                new TimeoutException()));
        }
    }

    private RedisConnectionException BrokenException() =>
        new($"The connection to Redis at {_endPoint} is broken; it is being re-established.");

    private static long ToStopwatchTicks(TimeSpan span) =>
        span <= TimeSpan.Zero ? 0 : (long)(span.TotalSeconds * Stopwatch.Frequency);

    /// <summary>A command waiting for its reply.</summary>
    private sealed class PendingReply(long deadline) : TaskCompletionSource<RespValue>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        private CancellationTokenRegistration _registration;

        public long Deadline { get; } = deadline;

        // A cancelled command stays in the queue: its reply still arrives and is then discarded.
        public void RegisterCancellation(CancellationToken cancellationToken) =>
            _registration = cancellationToken.UnsafeRegister(
                static (state, token) => ((PendingReply)state!).TrySetCanceled(token), this);

        public void Complete(RespValue value)
        {
            if (value.Type == RespType.Error) TrySetException(new RedisServerException(WithoutArguments(value.AsString()!)));
            else TrySetResult(value);
            _registration.Dispose();
        }

        public void Fail(Exception exception)
        {
            TrySetException(exception);
            _registration.Dispose();
        }

        // "ERR unknown command 'X', with args beginning with: 'key' ..." echoes arguments, which may be
        // keys; exception messages must not carry them.
        private static string WithoutArguments(string error)
        {
            var at = error.IndexOf(", with args beginning with:", StringComparison.Ordinal);
            return at < 0 ? error : error[..at];
        }
    }
}
