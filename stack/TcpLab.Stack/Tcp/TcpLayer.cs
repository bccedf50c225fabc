using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Net;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>A connection (or request, or TIME_WAIT entry) changed state.</summary>
public readonly record struct TcpStateChange(Instant At, FourTuple Tuple, long ConnectionId, TcpState From, TcpState To);

/// <summary>
/// TCP for one host: the tables that find a segment's socket (established hash with
/// connections, half-open requests and TIME_WAIT entries; listeners by address and port),
/// resets for segments nobody owns, ISNs, timestamp offsets and ephemeral ports, and the
/// output path every segment leaves through. Receive follows tcp_v4_rcv().
/// </summary>
public sealed class TcpLayer : IIpProtocolHandler
{
    private readonly Dictionary<FourTuple, TcpFlow> _flows = new();
    private readonly Dictionary<(Ipv4Address Address, ushort Port), ListenSocket> _listeners = new();
    private readonly SipHashKey _isnKey;
    private readonly SipHashKey _timestampKey;
    private readonly SipHashKey _portKey;
    private readonly int[] _portPerturb = new int[256]; // table_perturb (INET_TABLE_PERTURB_SIZE, smaller here)
    private long _challengeSecond = -1;
    private int _challengeCount;

    internal TcpLayer(NetworkStack stack)
    {
        Stack = stack;
        DeterministicRandom random = stack.Random.Derive("tcp");
        _isnKey = new SipHashKey(random.NextUInt64(), random.NextUInt64());
        _timestampKey = new SipHashKey(random.NextUInt64(), random.NextUInt64());
        _portKey = new SipHashKey(random.NextUInt64(), random.NextUInt64());
        for (int i = 0; i < _portPerturb.Length; i++) _portPerturb[i] = (int)(random.NextUInt32() & 0xFFFF);
        Random = random;
        TimerModel = new KernelTimerModel(stack.Sysctls.LabHz, stack.Sysctls.LabTimerWheelSlack);
        Syncookies = new Syncookies(stack.Random.Derive("tcp/syncookies"));
        FastOpenKeys = new FastOpenKeys(stack.Random.Derive("tcp/fastopen"));
    }

    public NetworkStack Stack { get; }
    internal Sysctls Sysctls => Stack.Sysctls;
    internal Counters Counters => Stack.Counters;
    internal EventLoop Loop => Stack.Loop;
    internal Instant Now => Stack.Loop.Now;
    internal DeterministicRandom Random { get; }

    /// <summary>How this host's kernel rounds timer deadlines (lab.hz, lab.timer_wheel_slack).</summary>
    public KernelTimerModel TimerModel { get; }

    /// <summary>The syncookie secret (syncookie_secret) and codec.</summary>
    public Syncookies Syncookies { get; }

    /// <summary>The Fast Open server key (net.ipv4.tcp_fastopen_key): rotate it with <see cref="FastOpenKeys.Rotate"/>.</summary>
    public FastOpenKeys FastOpenKeys { get; }

    /// <summary>Fast Open cookies this host got as a client, per server (the tcp_metrics cache).</summary>
    public FastOpenCookieCache FastOpenCache { get; } = new();

    /// <summary>Raised on the loop for every state change of every connection, request and TIME_WAIT entry.</summary>
    public event Action<TcpStateChange>? StateChanged;

    /// <summary>Connections, half-open requests and TIME_WAIT entries.</summary>
    public IEnumerable<TcpFlow> Flows => _flows.Values;
    public IEnumerable<ListenSocket> Listeners => _listeners.Values;

    /// <summary>TIME_WAIT (and orphaned FIN_WAIT_2) entries alive now, against tcp_max_tw_buckets.</summary>
    public int TimeWaitCount { get; internal set; }

    // ----- Application entry points -----

    /// <summary>listen(): binds <paramref name="port"/> (on <paramref name="address"/>, or every address if Any).</summary>
    public ListenSocket Listen(Ipv4Address address, ushort port, int backlog, TcpSocketOptions? options = null)
    {
        if (port == 0) throw new TcpException(Errno.EINVAL, "listen needs a port");
        options?.Validate();
        if (_listeners.ContainsKey((address, port)) || _listeners.ContainsKey((Ipv4Address.Any, port))
            || (address.IsAny && _listeners.Keys.Any(k => k.Port == port)))
            throw new TcpException(Errno.EADDRINUSE, $"port {port} already has a listener");
        var listener = new ListenSocket(this, address, port, backlog, options ?? new TcpSocketOptions());
        _listeners.Add((address, port), listener);
        return listener;
    }

    internal void RemoveListener(ListenSocket listener) => _listeners.Remove((listener.LocalAddress, listener.Port));

    /// <summary>
    /// connect(): picks the source address and an ephemeral port, sends the SYN. With
    /// TCP_FASTOPEN_CONNECT and a cookie cached for the server the SYN waits for the first write
    /// (<see cref="TcpConnection.IsConnectDeferred"/>).
    /// </summary>
    public TcpConnection Connect(Ipv4Address remote, ushort remotePort, TcpSocketOptions? options = null, ushort localPort = 0)
    {
        options ??= new TcpSocketOptions();
        if (options.FastOpenConnect && (Sysctls.TcpFastopen & FastOpenFlags.Client) == 0)
            throw new TcpException(Errno.EOPNOTSUPP, "TCP_FASTOPEN_CONNECT needs net.ipv4.tcp_fastopen & 1");
        return Open(remote, remotePort, options, localPort, ReadOnlySpan<byte>.Empty, fastOpen: false, out _);
    }

    /// <summary>
    /// sendto(MSG_FASTOPEN) on a new socket: connect, with as much of <paramref name="data"/> in
    /// the SYN as Fast Open allows (all of it waits for the handshake when no cookie is cached:
    /// the SYN then asks for one). <paramref name="queued"/> is how much of the data the send
    /// buffer took; the rest is the caller's to send once connected.
    /// </summary>
    public TcpConnection ConnectWithData(Ipv4Address remote, ushort remotePort, ReadOnlySpan<byte> data, out int queued,
                                         TcpSocketOptions? options = null, ushort localPort = 0)
    {
        if ((Sysctls.TcpFastopen & FastOpenFlags.Client) == 0)
            throw new TcpException(Errno.EOPNOTSUPP, "MSG_FASTOPEN needs net.ipv4.tcp_fastopen & 1");
        return Open(remote, remotePort, options ?? new TcpSocketOptions(), localPort, data, fastOpen: true, out queued);
    }

    private TcpConnection Open(Ipv4Address remote, ushort remotePort, TcpSocketOptions options, ushort localPort,
                               ReadOnlySpan<byte> data, bool fastOpen, out int queued)
    {
        if (remotePort == 0 || remote.IsAny || remote.IsBroadcast || remote.IsMulticast)
            throw new TcpException(Errno.EINVAL, $"cannot connect to {remote}:{remotePort}");
        if (!Stack.Ip.TryRoute(remote, out NetworkInterface networkInterface, out _))
            throw new TcpException(Errno.ENETUNREACH, $"no route to {remote}");
        Ipv4Address local = networkInterface.Address.Address;
        TimeWaitSocket? reusable = null;
        ushort port = localPort != 0 ? CheckExplicitPort(local, localPort, remote, remotePort, ref reusable)
                                     : PickEphemeralPort(local, remote, remotePort, ref reusable);
        var tuple = new FourTuple(local, port, remote, remotePort);
        var connection = new TcpConnection(this, tuple, options) { ConnectionId = NewConnectionId() };
        if (reusable is not null)
        {
            // tcp_twsk_unique: take over the tuple with an ISN beyond anything the old
            // connection used, and its timestamp memory for PAWS.
            reusable.Kill();
            Counters.Increment(Mib.TcpExtTWRecycled);
            connection.InheritFromTimeWait(reusable);
        }
        _flows.Add(tuple, connection);
        queued = connection.StartConnect(data, fastOpen);
        return connection;
    }

    /// <summary>
    /// A local port the application chose, bound as with SO_REUSEADDR (so TIME_WAIT entries on
    /// it do not block the bind): connect() then fails as __inet_hash_connect() does for a bound
    /// port whose 4-tuple is taken, with EADDRNOTAVAIL.
    /// </summary>
    private ushort CheckExplicitPort(Ipv4Address local, ushort port, Ipv4Address remote, ushort remotePort, ref TimeWaitSocket? reusable)
    {
        if (!IsFree(new FourTuple(local, port, remote, remotePort), ref reusable))
            throw new TcpException(Errno.EADDRNOTAVAIL, $"{local}:{port} -> {remote}:{remotePort} is in use");
        return port;
    }

    /// <summary>
    /// __inet_hash_connect: start at a keyed hash of the destination plus a per-bucket
    /// perturbation, walk ports of one parity in steps of 2, then the other parity.
    /// </summary>
    private ushort PickEphemeralPort(Ipv4Address local, Ipv4Address remote, ushort remotePort, ref TimeWaitSocket? reusable)
    {
        int low = Sysctls.IpLocalPortRange[0];
        int high = Sysctls.IpLocalPortRange[1] + 1;
        int remaining = high - low;
        if (remaining > 1) remaining &= ~1;
        ulong hash = _portKey.Hash(new FourTuple(local, 0, remote, remotePort));
        int index = (int)(hash & (ulong)(_portPerturb.Length - 1));
        int offset = (int)(((ulong)_portPerturb[index] + (hash >> 32)) % (ulong)remaining) & ~1;
        const int step = 2;
        for (int parity = 0; parity < 2; parity++, offset++)
        {
            int port = low + offset;
            for (int i = 0; i < remaining; i += step, port += step)
            {
                if (port >= high) port -= remaining;
                reusable = null;
                if (_listeners.Keys.Any(k => k.Port == port)) continue;
                if (!IsFree(new FourTuple(local, (ushort)port, remote, remotePort), ref reusable)) continue;
                _portPerturb[index] += Math.Max(i, Random.Next(0, 8) * step) + step;
                return (ushort)port;
            }
        }
        throw new TcpException(Errno.EADDRNOTAVAIL, $"no free local port in ip_local_port_range {low}..{high - 1} towards {remote}:{remotePort}");
    }

    /// <summary>__inet_check_established: free, or held by a TIME_WAIT entry tcp_twsk_unique lets us reuse.</summary>
    private bool IsFree(FourTuple tuple, ref TimeWaitSocket? reusable)
    {
        if (!_flows.TryGetValue(tuple, out TcpFlow? existing)) return true;
        if (existing is TimeWaitSocket tw && tw.MayReuseForConnect())
        {
            reusable = tw;
            return true;
        }
        return false;
    }

    // ----- Receive: tcp_v4_rcv -----

    public void Receive(in IpDatagram datagram)
    {
        Counters counters = Counters;
        counters.Increment(Mib.TcpInSegs);
        WireError error = TcpSegment.TryParse(datagram.Payload, out TcpSegment wire);
        if (error != WireError.None)
        {
            counters.Reject(WireProtocol.Tcp, error);
            counters.Increment(Mib.TcpInErrs);
            return;
        }
        if (!datagram.ChecksumTrusted && !wire.HasValidChecksum(datagram.Source, datagram.Destination))
        {
            counters.Reject(WireProtocol.Tcp, WireError.BadChecksum);
            counters.Increment(Mib.TcpInCsumErrors);
            counters.Increment(Mib.TcpInErrs);
            return;
        }
        // As tcp_parse_options(), a malformed option ends option parsing but not the segment.
        if (TcpHeader.Read(wire, out TcpHeader header) is var optionError and not WireError.None)
            counters.Reject(WireProtocol.Tcp, optionError);
        // A GRO superframe (TUN_F_TSO4) is one segment of several MSS: TCP takes it whole, as
        // Linux's TCP takes a GRO skb, and learns the peer's segment size from gso_size.
        int gsoSize = datagram.Offload.Gso == GsoKind.TcpV4 ? datagram.Offload.GsoSize : 0;
        var segment = new Segment(header, wire.Payload, datagram.Timestamp, gsoSize);
        var tuple = new FourTuple(datagram.Destination, header.DestinationPort, datagram.Source, header.SourcePort);

        if (_flows.TryGetValue(tuple, out TcpFlow? flow))
        {
            switch (flow)
            {
                case TcpConnection connection:
                    connection.Receive(segment);
                    return;
                case RequestSocket request:
                    request.Listener.ReceiveForRequest(request, segment);
                    return;
                case TimeWaitSocket timeWait:
                    ReceiveForTimeWait(timeWait, segment, datagram);
                    return;
            }
        }
        if (FindListener(tuple.LocalAddress, tuple.LocalPort) is { } listener)
        {
            listener.Receive(tuple, segment, isn: null);
            return;
        }
        counters.Drop(DropReason.TcpNoSocket);
        if (!datagram.IsBroadcast) SendResetFor(tuple, segment, CauseCode.TcpRstClosedPort);
    }

    /// <summary>tcp_v4_rcv's do_time_wait: the TIME_WAIT entry decides, a new SYN may become a connection.</summary>
    private void ReceiveForTimeWait(TimeWaitSocket timeWait, in Segment segment, in IpDatagram datagram)
    {
        switch (timeWait.Process(segment, out uint isn))
        {
            case TimeWaitSocket.Verdict.Ack:
                timeWait.SendAck();
                break;
            case TimeWaitSocket.Verdict.Reset:
                // tcp_v4_rcv TCP_TW_RST: reset the sender and forget the entry.
                SendResetFor(timeWait.Tuple, segment, CauseCode.TcpRstAbort);
                timeWait.Kill();
                break;
            case TimeWaitSocket.Verdict.Syn:
                if (FindListener(timeWait.Tuple.LocalAddress, timeWait.Tuple.LocalPort) is { } listener)
                {
                    timeWait.Kill();
                    listener.Receive(timeWait.Tuple, segment, isn);
                }
                else
                {
                    // No listener any more: the tuple is dead, answer like a closed port.
                    timeWait.Kill();
                    if (!datagram.IsBroadcast) SendResetFor(timeWait.Tuple, segment, CauseCode.TcpRstClosedPort);
                }
                break;
        }
    }

    private ListenSocket? FindListener(Ipv4Address address, ushort port) =>
        _listeners.TryGetValue((address, port), out ListenSocket? exact) ? exact
        : _listeners.GetValueOrDefault((Ipv4Address.Any, port));

    /// <summary>tcp_v4_err: an ICMP error about one of our segments.</summary>
    public void ReceiveError(in IcmpError error)
    {
        if (error.OriginalTransport.Length < 8) return;
        ushort sourcePort = (ushort)(error.OriginalTransport[0] << 8 | error.OriginalTransport[1]);
        ushort destinationPort = (ushort)(error.OriginalTransport[2] << 8 | error.OriginalTransport[3]);
        var tuple = new FourTuple(error.OriginalSource, sourcePort, error.OriginalDestination, destinationPort);
        if (!_flows.TryGetValue(tuple, out TcpFlow? flow)) return;
        uint seq = (uint)(error.OriginalTransport[4] << 24 | error.OriginalTransport[5] << 16 | error.OriginalTransport[6] << 8 | error.OriginalTransport[7]);
        switch (flow)
        {
            case TcpConnection connection:
                connection.ReceiveIcmpError(error.ToErrno(), new SeqNum(seq));
                break;
            case RequestSocket request when new SeqNum(seq) == request.Iss:
                // tcp_req_err: a hard error on the SYN-ACK ends the request (counted as a listen drop).
                request.Listener.DropRequest(request, countAsDrop: true);
                break;
        }
    }

    // ----- Tables -----

    internal void AddFlow(TcpFlow flow) => _flows.Add(flow.Tuple, flow);

    internal void ReplaceFlow(TcpFlow flow) => _flows[flow.Tuple] = flow;

    internal void RemoveFlow(TcpFlow flow)
    {
        if (_flows.TryGetValue(flow.Tuple, out TcpFlow? current) && ReferenceEquals(current, flow)) _flows.Remove(flow.Tuple);
    }

    internal void NotifyStateChange(TcpFlow flow, TcpState from, TcpState to)
    {
        if (from != to) StateChanged?.Invoke(new TcpStateChange(Now, flow.Tuple, flow.ConnectionId, from, to));
    }

    private long _lastConnectionId;

    /// <summary>A serial number for a connection being born (an active open or a SYN received).</summary>
    internal long NewConnectionId() => ++_lastConnectionId;

    // ----- Numbers -----

    /// <summary>
    /// RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey) with M a
    /// 4 µs clock and F SipHash (Linux's secure_tcp_seq uses the same hash and a 64 ns clock).
    /// </summary>
    internal SeqNum NewIsn(FourTuple tuple) => new((uint)_isnKey.Hash(tuple) + (uint)(Now.Nanoseconds / 4_000));

    /// <summary>secure_tcp_ts_off: a per-address-pair offset for TSval (0 with tcp_timestamps=2).</summary>
    internal uint TimestampOffset(FourTuple tuple) =>
        Sysctls.TcpTimestamps == 1 ? (uint)_timestampKey.Hash(new FourTuple(tuple.LocalAddress, 0, tuple.RemoteAddress, 0)) : 0;

    /// <summary>tcp_time_stamp_ts: the millisecond clock TSval counts on.</summary>
    internal uint TimestampClock => TimestampAt(Now);

    /// <summary>The TSval clock at <paramref name="t"/> (tcp_skb_timestamp_ts: a segment's TSval comes from its send time).</summary>
    internal static uint TimestampAt(Instant t) => (uint)t.Milliseconds;

    /// <summary>A timer deadline as this host's kernel would set it (see <see cref="TimerModel"/>).</summary>
    internal Instant Deadline(TimeSpan delay) => TimerModel.Deadline(Now, delay);

    /// <summary>tcp_challenge_ack_allowed: the per-second RFC 5961 quota, randomised as in Linux.</summary>
    internal bool ChallengeAckAllowed()
    {
        int limit = Sysctls.TcpChallengeAckLimit;
        if (limit == int.MaxValue) return true;
        long second = Now.Nanoseconds / 1_000_000_000;
        if (second != _challengeSecond)
        {
            int half = (limit + 1) >> 1;
            _challengeSecond = second;
            _challengeCount = Random.Next(half, limit + half);
        }
        if (_challengeCount <= 0) return false;
        _challengeCount--;
        return true;
    }

    /// <summary>__tcp_oow_rate_limited: at most one out-of-window answer per tcp_invalid_ratelimit.</summary>
    internal bool IsRateLimited(ref Instant? lastAnswer, Mib skippedCounter)
    {
        if (lastAnswer is { } last && Now - last < Sysctls.TcpInvalidRatelimit)
        {
            Counters.Increment(skippedCounter);
            return true;
        }
        lastAnswer = Now;
        return false;
    }

    // ----- Output -----

    private const ushort TcpChecksumOffset = 16;

    /// <summary>Whether the interface towards <paramref name="remote"/> finishes TCP checksums (TUN_F_CSUM on a TAP).</summary>
    private bool ChecksumOffload(Ipv4Address remote) =>
        Stack.Ip.TryRoute(remote, out NetworkInterface networkInterface, out _)
        && (networkInterface.Link.Info.Offloads & LinkOffloads.TxChecksum) != 0;

    /// <summary>A buffer from the pool of the interface that reaches <paramref name="remote"/>, or null without a route.</summary>
    internal PacketBuffer? RentSegmentBuffer(Ipv4Address remote) =>
        Stack.Ip.TryRoute(remote, out NetworkInterface networkInterface, out _) ? networkInterface.Pool.Rent() : null;

    /// <summary>
    /// Payload bytes a TSO superframe towards <paramref name="remote"/> may carry: a 64 KiB IP
    /// datagram less the largest IPv4 and TCP headers (GSO_MAX_SIZE in tcp_tso_autosize), or 0
    /// when the interface's link does not split superframes.
    /// </summary>
    internal int SuperframePayloadLimit(Ipv4Address remote) =>
        Stack.Ip.TryRoute(remote, out NetworkInterface networkInterface, out _) && networkInterface.SuperframePool is not null
            ? NetworkInterface.MaxSuperframeDatagram - Ipv4Header.Length - (TcpSegment.MinHeaderLength + TcpOptions.MaxLength)
            : 0;

    /// <summary>A buffer for a superframe of up to <see cref="SuperframePayloadLimit"/> bytes, or null without a route or such a link.</summary>
    internal PacketBuffer? RentSuperframeBuffer(Ipv4Address remote) =>
        Stack.Ip.TryRoute(remote, out NetworkInterface networkInterface, out _) ? networkInterface.SuperframePool?.Rent() : null;

    /// <summary>
    /// Puts the TCP header in front of the payload already in <paramref name="buffer"/>, fills the
    /// checksum and hands the segment to IP (DF set, as Linux's TCP does). Takes the buffer.
    /// <para>
    /// A buffer whose <see cref="OffloadInfo.Gso"/> the caller set is a TSO superframe: payload of
    /// several segments of <see cref="OffloadInfo.GsoSize"/> bytes behind one header, which the
    /// link splits; its checksum is always partial, and it counts as that many segments out.
    /// </para>
    /// </summary>
    internal void Transmit(FourTuple tuple, in TcpHeader header, PacketBuffer buffer, PacketCause cause, ushort ipId = 0, bool countAsOutSegment = true)
    {
        int segments = buffer.Offload.Gso == GsoKind.None ? 1 : (buffer.Length + buffer.Offload.GsoSize - 1) / buffer.Offload.GsoSize;
        Span<byte> tcp = buffer.Prepend(header.Length);
        header.Write(tcp);
        if (segments > 1) buffer.Offload.HeaderLength = (ushort)header.Length;   // IPv4 and Ethernet add theirs
        if (segments > 1 || ChecksumOffload(tuple.RemoteAddress))
        {
            // CHECKSUM_PARTIAL (tcp_v4_send_check): the link's device finishes the sum. The
            // pseudo-header holds the whole length; for a superframe the splitter replaces it with
            // each segment's (tcp_gso_segment's checksum delta).
            TcpHeader.WritePseudoHeaderChecksum(buffer.Span, tuple.LocalAddress, tuple.RemoteAddress);
            buffer.Offload.NeedsChecksum = true;
            buffer.Offload.ChecksumStart = 0;                 // IPv4 and Ethernet add their header lengths
            buffer.Offload.ChecksumOffset = TcpChecksumOffset;
        }
        else
        {
            TcpHeader.WriteChecksum(buffer.Span, tuple.LocalAddress, tuple.RemoteAddress);
        }
        buffer.Cause = cause;
        if (countAsOutSegment) Counters.Increment(Mib.TcpOutSegs, segments);
        if ((header.Flags & TcpFlags.Rst) != 0) Counters.Increment(Mib.TcpOutRsts);
        var ip = new Ipv4Header(tuple.LocalAddress, tuple.RemoteAddress, IpProtocol.Tcp, 0,
                                Ttl: (byte)Sysctls.IpDefaultTtl, Identification: ipId, DontFragment: true);
        Stack.Ip.Send(buffer, ip);
    }

    /// <summary>
    /// tcp_v4_send_reset: never for a RST; with the ACK bit the reset takes its sequence from
    /// the segment's ACK, otherwise it is "[R.] seq 0, ack seq+len(+SYN+FIN), win 0".
    /// </summary>
    internal void SendResetFor(FourTuple tuple, in Segment segment, CauseCode cause)
    {
        if (segment.Rst) return;
        var header = new TcpHeader
        {
            SourcePort = tuple.LocalPort,
            DestinationPort = tuple.RemotePort,
            Flags = TcpFlags.Rst,
        };
        if (segment.HasAck)
        {
            header.SequenceNumber = segment.Ack.Value;
        }
        else
        {
            header.Flags |= TcpFlags.Ack;
            header.AcknowledgmentNumber = segment.EndSeq.Value;
        }
        if (RentSegmentBuffer(tuple.RemoteAddress) is { } buffer) Transmit(tuple, header, buffer, new PacketCause(cause));
    }
}
