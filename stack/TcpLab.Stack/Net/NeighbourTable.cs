using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Stack.Net;

/// <summary>Neighbour Unreachability Detection states, as in Linux's include/net/neighbour.h.</summary>
public enum NeighbourState
{
    /// <summary>Resolving: broadcast requests every retrans_time, packets queued.</summary>
    Incomplete,
    /// <summary>Confirmed within reachable_time: used without question.</summary>
    Reachable,
    /// <summary>Not confirmed lately; used, and the first use starts re-confirmation.</summary>
    Stale,
    /// <summary>Used while stale: waiting delay_first_probe_time for an upper-layer confirmation.</summary>
    Delay,
    /// <summary>Unicast probes every retrans_time until ucast_solicit are unanswered.</summary>
    Probe,
}

/// <summary>
/// The ARP cache of one interface (RFC 826 with Linux's neighbour state machine,
/// net/core/neighbour.c neigh_timer_handler and net/ipv4/arp.c arp_process). A lookup that
/// misses queues the packet and broadcasts a request at once and then every retrans_time;
/// after mcast_solicit requests go unanswered the queued packets fail with "host unreachable"
/// to their senders, which is what makes connect() to an absent on-link address fail with
/// EHOSTUNREACH after about three seconds on Linux.
/// </summary>
public sealed class NeighbourTable
{
    private readonly NetworkStack _stack;
    private readonly NetworkInterface _interface;
    private readonly Dictionary<Ipv4Address, Neighbour> _entries = new();

    internal NeighbourTable(NetworkStack stack, NetworkInterface networkInterface)
    {
        _stack = stack;
        _interface = networkInterface;
    }

    private Sysctls Sysctls => _stack.Sysctls;
    private Instant Now => _stack.Loop.Now;

    public int Count => _entries.Count;

    /// <summary>The entries as `ip neigh` would list them.</summary>
    public IEnumerable<(Ipv4Address Address, MacAddress Mac, NeighbourState State)> Entries =>
        _entries.Values.OrderBy(n => n.Address).Select(n => (n.Address, n.Mac, n.State));

    public bool TryGetMac(Ipv4Address address, out MacAddress mac)
    {
        if (_entries.TryGetValue(address, out Neighbour? n) && n.State != NeighbourState.Incomplete)
        {
            mac = n.Mac;
            return true;
        }
        mac = MacAddress.Zero;
        return false;
    }

    /// <summary>
    /// An upper layer saw the neighbour answer (TCP forward progress, like Linux's
    /// dst_confirm_neigh), which keeps a used entry from going through probes.
    /// </summary>
    public void Confirm(Ipv4Address address)
    {
        if (_entries.TryGetValue(address, out Neighbour? n) && n.State != NeighbourState.Incomplete) n.Confirmed = Now;
    }

    /// <summary>Sends the datagram to <paramref name="nextHop"/>, resolving it first if needed.</summary>
    internal void Send(PacketBuffer datagram, Ipv4Address nextHop)
    {
        if (!_entries.TryGetValue(nextHop, out Neighbour? n))
        {
            n = Add(nextHop);
            n.Enqueue(datagram, Sysctls.NeighUnresolvedQueueBytes, _stack.Counters);
            StartResolution(n);
            return;
        }
        n.Used = Now;
        switch (n.State)
        {
            case NeighbourState.Incomplete:
                n.Enqueue(datagram, Sysctls.NeighUnresolvedQueueBytes, _stack.Counters);
                return;
            case NeighbourState.Stale:
                // __neigh_event_send: first use of a stale entry starts the DELAY timer, the packet goes now.
                n.State = NeighbourState.Delay;
                n.Timer.Arm(Now + Sysctls.NeighDelayFirstProbeTime);
                break;
        }
        _interface.TransmitFrame(datagram, n.Mac, EtherType.Ipv4);
    }

    /// <summary>
    /// Like Linux's gc_thresh3 (1024), a hard cap: a full table forgets its least recently used
    /// resolved entry, so ARP from spoofed senders cannot grow it without bound.
    /// </summary>
    private const int MaxEntries = 1024;

    private Neighbour Add(Ipv4Address address)
    {
        if (_entries.Count >= MaxEntries)
        {
            Neighbour? victim = _entries.Values.Where(e => e.State != NeighbourState.Incomplete).MinBy(e => e.Used);
            if (victim is not null)
            {
                victim.Timer.Cancel();
                _entries.Remove(victim.Address);
            }
        }
        var n = new Neighbour(address, this);
        _entries.Add(address, n);
        return n;
    }

    private void StartResolution(Neighbour n)
    {
        n.State = NeighbourState.Incomplete;
        n.Probes = 0;
        SendRequest(n, unicast: false);
    }

    private void SendRequest(Neighbour n, bool unicast)
    {
        n.Probes++;
        int max = unicast ? Sysctls.NeighUcastSolicit : Sysctls.NeighMcastSolicit;
        PacketBuffer frame = _interface.Pool.Rent();
        var request = new ArpPacket(ArpOperation.Request, _interface.Mac, _interface.Address.Address,
                                    unicast ? n.Mac : MacAddress.Zero, n.Address);
        request.Write(frame.Append(ArpPacket.Length));
        frame.Cause = new PacketCause(CauseCode.ArpRequest, n.Probes, max);
        _stack.Counters.Increment(Mib.ArpOutRequests);
        _interface.TransmitFrame(frame, unicast ? n.Mac : MacAddress.Broadcast, EtherType.Arp);
        n.Timer.Arm(Now + Sysctls.NeighRetransTime);
    }

    /// <summary>neigh_timer_handler: the one timer of an entry drives every state's next step.</summary>
    private void OnTimer(Neighbour n)
    {
        switch (n.State)
        {
            case NeighbourState.Reachable:
                Instant reachableUntil = n.Confirmed + n.ReachableTime;
                if (Now < reachableUntil) n.Timer.Arm(reachableUntil);
                else if (Now < n.Used + Sysctls.NeighDelayFirstProbeTime)
                {
                    n.State = NeighbourState.Delay;
                    n.Timer.Arm(n.Used + Sysctls.NeighDelayFirstProbeTime);
                }
                else n.State = NeighbourState.Stale;
                break;
            case NeighbourState.Delay:
                if (Now < n.Confirmed + Sysctls.NeighDelayFirstProbeTime) MarkReachable(n);
                else
                {
                    n.State = NeighbourState.Probe;
                    n.Probes = 0;
                    SendRequest(n, unicast: true);
                }
                break;
            case NeighbourState.Incomplete or NeighbourState.Probe:
                int max = n.State == NeighbourState.Incomplete ? Sysctls.NeighMcastSolicit : Sysctls.NeighUcastSolicit;
                if (n.Probes >= max) Fail(n);
                else SendRequest(n, unicast: n.State == NeighbourState.Probe);
                break;
        }
    }

    /// <summary>neigh_invalidate: queued packets fail back to their senders as host unreachable.</summary>
    private void Fail(Neighbour n)
    {
        _entries.Remove(n.Address);
        n.Timer.Cancel();
        _stack.Counters.Increment(Mib.ArpResolutionFailures);
        while (n.Pending.TryDequeue(out PacketBuffer? datagram))
        {
            _stack.Counters.Drop(DropReason.NeighbourFailed);
            _stack.Ip.ReportLocalUnreachable(datagram);
            datagram.Release();
        }
    }

    private void MarkReachable(Neighbour n)
    {
        n.State = NeighbourState.Reachable;
        n.Confirmed = Now;
        n.ReachableTime = RandomReachableTime();
        n.Timer.Arm(Now + n.ReachableTime);
    }

    /// <summary>neigh_rand_reach_time: uniformly 0.5x to 1.5x base_reachable_time.</summary>
    private TimeSpan RandomReachableTime()
    {
        long baseTicks = Sysctls.NeighBaseReachableTime.Ticks;
        return TimeSpan.FromTicks(baseTicks / 2 + (long)(_stack.Random.NextDouble() * baseTicks));
    }

    /// <summary>arp_process: answer requests for our address, learn from requests to us and from replies.</summary>
    internal void ReceiveArp(PacketBuffer frame)
    {
        Counters counters = _stack.Counters;
        WireError error = ArpPacket.TryParse(frame.Span, out ArpPacket arp);
        frame.Release();
        if (error != WireError.None)
        {
            counters.Reject(WireProtocol.Arp, error);
            return;
        }
        counters.Increment(arp.Operation == ArpOperation.Request ? Mib.ArpInRequests : Mib.ArpInReplies);
        if (arp.SenderMac.IsMulticast || arp.SenderIp.IsMulticast || arp.SenderIp.IsBroadcast)
        {
            counters.Reject(WireProtocol.Arp, WireError.BadField);
            return;
        }
        bool forUs = arp.TargetIp == _interface.Address.Address;
        _entries.TryGetValue(arp.SenderIp, out Neighbour? known);

        if (arp.Operation == ArpOperation.Request && forUs && !arp.SenderIp.IsAny)
        {
            SendReply(arp);
            // A request to us creates or refreshes the sender's entry (neigh_event_ns).
            Learn(arp.SenderIp, arp.SenderMac, known, NeighbourState.Stale);
        }
        else if (known is not null)
        {
            // Any other ARP from a known host updates it: a reply to us confirms it, the rest
            // (requests for others, gratuitous ARP) only refresh its MAC.
            bool confirms = arp.Operation == ArpOperation.Reply && forUs;
            Learn(arp.SenderIp, arp.SenderMac, known, confirms ? NeighbourState.Reachable : NeighbourState.Stale);
        }
        else if (!forUs)
        {
            counters.Drop(DropReason.ArpNotForUs); // arp_accept=0: unknown senders create nothing
        }
    }

    private void Learn(Ipv4Address address, MacAddress mac, Neighbour? n, NeighbourState state)
    {
        n ??= Add(address);
        bool changed = n.Mac != mac;
        n.Mac = mac;
        if (state == NeighbourState.Reachable) MarkReachable(n);
        else if (n.State == NeighbourState.Incomplete || changed)
        {
            // neigh_update: STALE with an unchanged address keeps the current state.
            n.State = NeighbourState.Stale;
            n.Timer.Cancel();
        }
        // Resolution done: what waited goes out now, in order.
        while (n.Pending.TryDequeue(out PacketBuffer? datagram))
        {
            n.PendingBytes -= datagram.Length;
            _interface.TransmitFrame(datagram, n.Mac, EtherType.Ipv4);
        }
    }

    private void SendReply(in ArpPacket request)
    {
        PacketBuffer frame = _interface.Pool.Rent();
        new ArpPacket(ArpOperation.Reply, _interface.Mac, _interface.Address.Address, request.SenderMac, request.SenderIp)
            .Write(frame.Append(ArpPacket.Length));
        frame.Cause = new PacketCause(CauseCode.ArpReply);
        _stack.Counters.Increment(Mib.ArpOutReplies);
        _interface.TransmitFrame(frame, request.SenderMac, EtherType.Arp);
    }

    private sealed class Neighbour
    {
        public Neighbour(Ipv4Address address, NeighbourTable table)
        {
            Address = address;
            Timer = table._stack.Loop.CreateTimer(() => table.OnTimer(this));
        }

        public readonly Ipv4Address Address;
        public readonly Timer Timer;
        public readonly Queue<PacketBuffer> Pending = new();
        public MacAddress Mac;
        public NeighbourState State;
        public int Probes;
        public int PendingBytes;
        public Instant Confirmed;
        public Instant Used;
        public TimeSpan ReachableTime;

        /// <summary>Queues while resolving; beyond unres_qlen_bytes the oldest packets are dropped.</summary>
        public void Enqueue(PacketBuffer datagram, int limitBytes, Counters counters)
        {
            Pending.Enqueue(datagram);
            PendingBytes += datagram.Length;
            while (PendingBytes > limitBytes && Pending.Count > 1)
            {
                PacketBuffer oldest = Pending.Dequeue();
                PendingBytes -= oldest.Length;
                counters.Increment(Mib.ArpQueueDrops);
                counters.Drop(DropReason.NeighbourFailed);
                oldest.Release();
            }
        }
    }
}
