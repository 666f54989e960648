using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Core.Redis;

/// <summary>
/// One TCP connection to Redis. Callers write commands into a buffer under a lock (so the order of the
/// pending queue is the order on the wire). The caller that finds no send in progress sends the buffer
/// itself (a non-blocking socket send that completes at once unless the socket buffer is full); callers
/// arriving meanwhile only append, and the sender drains what accumulated before it lets go, so commands
/// are batched under load without a thread hop per command when idle. A receive loop parses replies and
/// completes pending commands first-in first-out, running the awaiting code inline (again no hop). A
/// connection is used until it breaks and is then discarded: <see cref="ConnectionSupervisor"/> makes a
/// new one.
/// </summary>
/// <remarks>
/// Why no send loop and no asynchronous completions: on a small machine each thread hop is a futex
/// wake and a context switch, and a command cost three of them (wake the send loop, the receive
/// loop, then the awaiting caller). Measured on 2 vCPU at 1,000 requests/s, those wakes were most of
/// the proxy's CPU per request. The price of inline completions is that code awaiting a reply runs on
/// the receive loop until its next await, so it must not block; nothing in this code base waits on a
/// task synchronously.
/// </remarks>
internal sealed class RespConnection
{
    private const int BufferShrinkThreshold = 1024 * 1024;

    private readonly Socket _socket;
    private readonly PipeReader _input;
    // Commands written while no send is in progress, or while one is (double buffering): _filling is
    // written under _writeLock; _draining belongs to whoever holds _sending.
    private ArrayBufferWriter<byte> _filling = new(16 * 1024);
    private ArrayBufferWriter<byte> _draining = new(16 * 1024);
    private bool _sending; // under _writeLock
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
        // Memory is bounded by the command timeout: a connection that stops draining fails.
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
        CancellationToken cancellationToken) =>
        Send(command, head, first, second, extraTimeout, asking: false, cancellationToken);

    /// <summary>
    /// Like <see cref="SendAsync"/>, preceded by <c>ASKING</c> in the same critical section, so no other
    /// caller's command can come between the two on the wire (Redis Cluster's ASK redirection: ASKING
    /// applies to the next command of the connection only). The ASKING reply is read and discarded.
    /// </summary>
    public Task<RespValue> SendAskingAsync(
        string command,
        ReadOnlySpan<RedisArg> head,
        IReadOnlyList<RedisArg>? first,
        IReadOnlyList<RedisArg>? second,
        TimeSpan extraTimeout,
        CancellationToken cancellationToken) =>
        Send(command, head, first, second, extraTimeout, asking: true, cancellationToken);

    private Task<RespValue> Send(
        string command,
        ReadOnlySpan<RedisArg> head,
        IReadOnlyList<RedisArg>? first,
        IReadOnlyList<RedisArg>? second,
        TimeSpan extraTimeout,
        bool asking,
        CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<RespValue>(cancellationToken);
        var deadline = Stopwatch.GetTimestamp() + _commandTimeoutTicks + ToStopwatchTicks(extraTimeout);
        var pending = new PendingReply(deadline);
        // Registered before the pending reply is published to the receive loop, so the loop sees the
        // registration when it completes the reply.
        if (cancellationToken.CanBeCanceled) pending.RegisterCancellation(cancellationToken);

        bool send;
        lock (_writeLock)
        {
            if (_failed)
            {
                pending.Fail(BrokenException()); // nobody awaits it yet; also drops the cancellation registration
                return pending.Task;
            }
            try
            {
                if (asking) RespWriter.WriteCommand(_filling, "ASKING", [], null, null);
                RespWriter.WriteCommand(_filling, command, head, first, second);
            }
            catch (Exception e)
            {
                // Half a command may be in the buffer: the stream can no longer be trusted.
                FailLocked(new RedisConnectionException("Writing a Redis command failed.", e));
                throw;
            }
            // Nobody awaits the ASKING reply; if ASKING failed, the command's own reply says why (ASK/MOVED).
            if (asking) _pending.Enqueue(new PendingReply(deadline, discard: true));
            _pending.Enqueue(pending);
            send = !_sending;
            if (send) _sending = true;
        }
        if (send) Drain();
        return pending.Task;
    }

    /// <summary>Sends whatever is buffered until nothing is; called by the one caller that set <see cref="_sending"/>.</summary>
    private void Drain()
    {
        try
        {
            while (true)
            {
                ArrayBufferWriter<byte> batch;
                lock (_writeLock)
                {
                    if (_failed || _filling.WrittenCount == 0)
                    {
                        _sending = false;
                        return;
                    }
                    batch = _filling;
                    _filling = _draining;
                    _draining = batch;
                }
                var remaining = batch.WrittenMemory;
                while (!remaining.IsEmpty)
                {
                    var sent = _socket.SendAsync(remaining, SocketFlags.None);
                    if (!sent.IsCompletedSuccessfully)
                    {
                        // The socket buffer is full (or the send failed): finish asynchronously.
                        _ = DrainAsync(sent, batch, remaining);
                        return;
                    }
                    remaining = remaining[sent.Result..];
                }
                Recycle(batch);
            }
        }
        catch (Exception e)
        {
            SendFailed(e);
        }
    }

    private async Task DrainAsync(ValueTask<int> inFlight, ArrayBufferWriter<byte> batch, ReadOnlyMemory<byte> remaining)
    {
        try
        {
            var sent = await inFlight.ConfigureAwait(false);
            remaining = remaining[sent..];
            while (!remaining.IsEmpty)
            {
                sent = await _socket.SendAsync(remaining, SocketFlags.None).ConfigureAwait(false);
                remaining = remaining[sent..];
            }
            Recycle(batch);
        }
        catch (Exception e)
        {
            SendFailed(e);
            return;
        }
        Drain();
    }

    private void Recycle(ArrayBufferWriter<byte> batch)
    {
        // One huge command must not pin its buffer for the connection's lifetime.
        if (batch.Capacity > BufferShrinkThreshold)
        {
            lock (_writeLock)
            {
                if (ReferenceEquals(_draining, batch)) _draining = new ArrayBufferWriter<byte>(16 * 1024);
            }
            return;
        }
        batch.ResetWrittenCount();
    }

    private void SendFailed(Exception e)
    {
        lock (_writeLock)
        {
            _sending = false;
        }
        Fail(e as RedisConnectionException ?? new RedisConnectionException($"Sending to Redis at {_endPoint} failed: {e.Message}", e));
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
        // Replies complete inline, so failing them here would run their callers' code under this lock:
        // hand them to the thread pool. Each caller gets its own exception object: one instance thrown
        // from many awaits would have its stack trace rewritten concurrently.
        var failed = new List<PendingReply>();
        while (_pending.TryDequeue(out var pending)) failed.Add(pending);
        if (failed.Count > 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state =>
            {
                foreach (var p in state.failed) p.Fail(new RedisConnectionException(state.reason.Message, state.reason));
            }, (failed, reason), preferLocal: false);
        }
        _closed.TrySetResult(reason);
    }

    private void Start() => _ = Task.Run(ReceiveLoopAsync);

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
    /// <remarks>Completed inline by the receive loop (no RunContinuationsAsynchronously): see the class remarks.</remarks>
    private sealed class PendingReply(long deadline, bool discard = false) : TaskCompletionSource<RespValue>
    {
        private CancellationTokenRegistration _registration;

        public long Deadline { get; } = deadline;

        // A cancelled command stays in the queue: its reply still arrives and is then discarded.
        public void RegisterCancellation(CancellationToken cancellationToken) =>
            _registration = cancellationToken.UnsafeRegister(
                static (state, token) => ((PendingReply)state!).TrySetCanceled(token), this);

        public void Complete(RespValue value)
        {
            // A discarded reply (ASKING) never faults its task: nobody would observe the exception.
            if (value.Type == RespType.Error && !discard) TrySetException(new RedisServerException(WithoutArguments(value.AsString()!)));
            else TrySetResult(value);
            _registration.Dispose();
        }

        public void Fail(Exception exception)
        {
            if (discard) TrySetResult(RespValue.Nil);
            else TrySetException(exception);
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
