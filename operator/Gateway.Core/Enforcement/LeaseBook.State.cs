using Gateway.Core.Usage;

namespace Gateway.Core.Enforcement;

/// <summary>Settings of <see cref="LeaseBook"/> (TokenGate:Leases).</summary>
public sealed record LeaseOptions
{
    /// <summary>Whether the proxy admits through leases (Hot path v2, the default; pairs near a limit stay exact); off:
    /// every request runs the exact scripts.</summary>
    public bool Enabled { get; init; } = true;
    /// <summary>How long a lease may live (it also ends with the minute or day of a limit that applies).</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A lease needs this many times its slice free in every limited dimension, else the pair is admitted exactly.</summary>
    public int HeadroomFactor { get; init; } = 4;
    /// <summary>A lease holds about this much of the pair's recent traffic on this replica.</summary>
    public TimeSpan SliceTraffic { get; init; } = TimeSpan.FromSeconds(2);
    public int MinRequests { get; init; } = 8;
    public int MaxRequests { get; init; } = 5_000;
    /// <summary>A lease with nothing in flight and no admission for this long is returned.</summary>
    public TimeSpan IdleReturn { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Admission stops this long before a lease expires.</summary>
    public TimeSpan ExpiryMargin { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>After a refused grant (near a limit) the pair is admitted exactly for this long before asking again.</summary>
    public TimeSpan RefusedBackoff { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>How often due leases are looked for (flushes also happen whenever an admission waits).</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>How long a settlement (its usage event) waits for an admission's group commit to ride with before it is
    /// flushed on its own: the bounded linger of the usage batches.</summary>
    public TimeSpan SettleLinger { get; init; } = TimeSpan.FromMilliseconds(5);
    public int MaxLeasesPerFlush { get; init; } = 64;

    public List<string> Validate()
    {
        var errors = new List<string>();
        if (Ttl < TimeSpan.FromSeconds(1) || Ttl > TimeSpan.FromMinutes(10)) errors.Add($"TokenGate:Leases:Ttl must be between 00:00:01 and 00:10:00 (was {Ttl}).");
        if (HeadroomFactor is < 1 or > 100) errors.Add($"TokenGate:Leases:HeadroomFactor must be between 1 and 100 (was {HeadroomFactor}).");
        if (MinRequests < 1 || MaxRequests < MinRequests) errors.Add($"TokenGate:Leases:MinRequests must be at least 1 and at most MaxRequests (were {MinRequests} and {MaxRequests}).");
        if (SliceTraffic <= TimeSpan.Zero) errors.Add($"TokenGate:Leases:SliceTraffic must be positive (was {SliceTraffic}).");
        if (IdleReturn <= TimeSpan.Zero) errors.Add($"TokenGate:Leases:IdleReturn must be positive (was {IdleReturn}).");
        if (SweepInterval < TimeSpan.FromMilliseconds(10) || SweepInterval > TimeSpan.FromSeconds(10))
            errors.Add($"TokenGate:Leases:SweepInterval must be between 00:00:00.01 and 00:00:10 (was {SweepInterval}).");
        if (SettleLinger < TimeSpan.Zero || SettleLinger > SweepInterval)
            errors.Add($"TokenGate:Leases:SettleLinger must be between 00:00:00 and SweepInterval (was {SettleLinger}).");
        if (MaxLeasesPerFlush is < 1 or > 1_000) errors.Add($"TokenGate:Leases:MaxLeasesPerFlush must be between 1 and 1000 (was {MaxLeasesPerFlush}).");
        return errors;
    }
}

/// <summary>A request admitted against a lease; settle or release it with the <see cref="LeaseBook"/> that admitted it.</summary>
public sealed class LeaseTicket
{
    private int _finished;

    internal LeaseTicket(LeaseBook.Slot slot, AdmissionRequest request, DateTimeOffset startedAt)
    {
        Slot = slot;
        Request = request;
        StartedAt = startedAt;
    }

    /// <summary>What was admitted.</summary>
    public AdmissionRequest Request { get; }
    public string RequestId => Request.RequestId;
    public int KeyVersion => Request.Key.Version;
    public long ReservedMicros => Request.ReservedMicros;
    public long EstimatedTokens => Request.EstimatedTokens;
    public DateTimeOffset StartedAt { get; }
    /// <summary>The lease it was admitted under.</summary>
    public string LeaseId => Slot.Lease.LeaseId;

    /// <summary>
    /// Requests window for the x-ratelimit-* headers (null when the key and user have no request limits), as an exact
    /// admission would report it at the counts this replica knows, without a Redis call: the windows as the lease's
    /// grant counted them (its whole slice included), less the part of the slice this replica has not used yet
    /// (requests admitted under the lease so far, this one included, count; tokens as estimated while in flight and as
    /// actually used once settled, as exact settlement corrects the windows). Reset as in exact mode
    /// (<see cref="RateLimitHeaders"/>).
    /// <para>
    /// It may be slightly optimistic about other replicas: their admissions and leases since this grant are not seen.
    /// It is never optimistic about this lease: remaining is at most the room the window had beyond the whole slice at
    /// the grant plus what is left of the slice, so a client trusting it is never told of room the lease does not have.
    /// </para>
    /// </summary>
    public RateLimitStatus? Requests { get; internal init; }
    /// <summary>Tokens window for the x-ratelimit-* headers, computed as <see cref="Requests"/> (null without token limits).</summary>
    public RateLimitStatus? Tokens { get; internal init; }

    internal LeaseBook.Slot Slot { get; }
    internal TaskCompletionSource Recorded { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal bool TryFinish() => Interlocked.Exchange(ref _finished, 1) == 0;
}

public sealed partial class LeaseBook
{
    internal enum SlotState { Active, Retired, Ending, Ended }

    internal enum RecordKind { Admission, Settlement, Release }

    internal sealed record Record(Slot Slot, LeaseTicket Ticket, RecordKind Kind, UsageEvent? Usage, long ActualMicros);

    /// <summary>One (user, key) pair on this replica: its current lease, older ones still ending, the renewal in flight.
    /// Guarded by locking the pair.</summary>
    internal sealed class Pair(string keyId)
    {
        private long _second;
        private int _inSecond;
        private double _rate;

        public string KeyId { get; } = keyId;
        public Slot? Current { get; set; }
        public List<Slot> Slots { get; } = [];
        public Task<Slot?>? Renewal { get; set; }
        /// <summary>Most requests in flight at once under one lease lately (sizes the next lease's concurrency slots).</summary>
        public int PeakInFlight { get; set; }
        public DateTimeOffset RefusedUntil { get; set; }
        public bool Removed { get; set; }
        public int HeldCount { get { lock (this) return Slots.Count; } }

        /// <summary>Counts a request towards the pair's recent demand (per second, smoothed).</summary>
        public void Note(DateTimeOffset now)
        {
            var second = now.ToUnixTimeSeconds();
            if (second != _second)
            {
                _rate = _second == 0 ? _inSecond : 0.5 * _rate + 0.5 * _inSecond / Math.Max(1, second - _second);
                _second = second;
                _inSecond = 0;
            }
            _inSecond++;
        }

        public (long Money, long Requests, long Tokens, int Slots) SliceFor(AdmissionRequest request, LeaseOptions options, DateTimeOffset now)
        {
            var rate = Math.Max(_rate, _inSecond);
            var requests = (long)Math.Clamp(Math.Ceiling(rate * options.SliceTraffic.TotalSeconds), options.MinRequests, options.MaxRequests);
            // Twice the concurrency seen (a lease that ran out of slots saw all of them in use: the next one doubles).
            var slots = Math.Clamp(2 * PeakInFlight, 8, 1_024);
            return (requests * request.ReservedMicros, requests, requests * request.EstimatedTokens, slots);
        }
    }

    /// <summary>One lease held by this replica and what is left of it locally. Guarded by locking its pair.</summary>
    internal sealed class Slot(Pair pair, QuotaLease lease)
    {
        public Pair Pair { get; } = pair;
        public QuotaLease Lease { get; } = lease;
        public long Money { get; private set; } = lease.Money;
        public long Requests { get; private set; } = lease.Requests;
        public long Tokens { get; private set; } = lease.Tokens;
        public int InFlight { get; private set; }
        public SlotState State { get; set; }
        public DateTimeOffset LastUsed { get; private set; } = lease.GrantedAt;
        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Records of its requests may still be queued (it has not begun ending).</summary>
        public bool Accepting => State is SlotState.Active or SlotState.Retired;

        public LeaseTicket? TryTake(AdmissionRequest request, DateTimeOffset now, TimeSpan margin)
        {
            if (State != SlotState.Active || now >= Lease.ExpiresAt - margin) return null;
            if (Requests < 1 || Money < request.ReservedMicros || Tokens < request.EstimatedTokens) return null;
            if (Lease.Slots > 0 && InFlight >= Lease.Slots)
            {
                Pair.PeakInFlight = Math.Max(Pair.PeakInFlight, InFlight);
                return null;
            }
            // The windows before this request, as far as this replica knows: the grant's counts less the part of the
            // slice not used yet (computed under the pair's lock, so concurrent admissions each see the ones before).
            var counts = Lease.Counts.Less(Requests, Tokens);
            var (requestsWindow, tokensWindow) = RateLimitHeaders.For(request, counts, now.ToUnixTimeMilliseconds(), allowed: true);
            Requests--;
            Money -= request.ReservedMicros;
            Tokens -= request.EstimatedTokens;
            InFlight++;
            if (InFlight > Pair.PeakInFlight) Pair.PeakInFlight = InFlight;
            LastUsed = now;
            return new LeaseTicket(this, request, now) { Requests = requestsWindow, Tokens = tokensWindow };
        }

        /// <summary>The admission never reached Redis: the request did not happen.</summary>
        public void Untake(LeaseTicket ticket)
        {
            lock (Pair)
            {
                if (!ticket.TryFinish()) return;
                Requests++;
                Money += ticket.ReservedMicros;
                Tokens += ticket.EstimatedTokens;
                InFlight--;
            }
        }

        public void Settle(LeaseTicket ticket, long actualMicros, long actualTokens, bool released)
        {
            Money += ticket.ReservedMicros - (released ? 0 : actualMicros);
            Tokens += ticket.EstimatedTokens - (released ? 0 : actualTokens);
            InFlight--;
        }

        /// <summary>A quarter or less of any slice left: time to take the next lease.</summary>
        public bool Low(DateTimeOffset now) =>
            State == SlotState.Active && (Requests * 4 <= Lease.Requests || Money * 4 <= Lease.Money || Tokens * 4 <= Lease.Tokens);

        public bool Idle(DateTimeOffset now, TimeSpan after) => InFlight == 0 && now - LastUsed >= after;

        public void Retire()
        {
            if (State == SlotState.Active) State = SlotState.Retired;
        }
    }
}
