using System.Security.Cryptography;
using TcpLab.Lab.Trace;
using TcpLab.Stack;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Scenarios;

/// <summary>A frame seen at the capture point, decoded once, with the time since the run started.</summary>
public sealed class RecordedFrame
{
    public RecordedFrame(TimeSpan at, long unixNanoseconds, byte[] data, string? comment)
    {
        At = at;
        UnixNanoseconds = unixNanoseconds;
        Data = data;
        Comment = comment;
        if (EthernetFrame.TryParse(data, out EthernetFrame eth) != WireError.None || eth.EtherType != EtherType.Ipv4
            || Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip, verifyChecksum: false) != WireError.None)
            return;
        Source = ip.Source;
        Destination = ip.Destination;
        PayloadLength = ip.Payload.Length;
        if (ip.Protocol != IpProtocol.Tcp || ip.FragmentOffset != 0 || TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) != WireError.None)
            return;
        IsTcp = true;
        Flags = tcp.Flags;
        PayloadLength = tcp.Payload.Length;
        SourcePort = tcp.SourcePort;
        DestinationPort = tcp.DestinationPort;
        Seq = tcp.SequenceNumber;
        Ack = tcp.AcknowledgmentNumber;
        if (TcpOptions.Parse(tcp.OptionBytes, out TcpOptions options) == WireError.None && options.HasMss) Mss = options.Mss;
    }

    public TimeSpan At { get; }
    public long UnixNanoseconds { get; }
    public byte[] Data { get; }
    public string? Comment { get; }
    public Ipv4Address? Source { get; }
    public Ipv4Address? Destination { get; }
    public bool IsTcp { get; }
    public TcpFlags Flags { get; }
    /// <summary>TCP payload bytes (IP payload bytes for other protocols).</summary>
    public int PayloadLength { get; }
    public ushort SourcePort { get; }
    public ushort DestinationPort { get; }
    public uint Seq { get; }
    public uint Ack { get; }
    /// <summary>The MSS option's value (a SYN's), if the segment has one.</summary>
    public ushort? Mss { get; }

    /// <summary>The sequence number after this segment: its data and its SYN and FIN each take one.</summary>
    public uint SeqEnd => unchecked(Seq + (uint)PayloadLength + ((Flags & TcpFlags.Syn) != 0 ? 1u : 0) + ((Flags & TcpFlags.Fin) != 0 ? 1u : 0));

    public bool Carries(FourTuple fromLocal) =>
        IsTcp && Source == fromLocal.LocalAddress && SourcePort == fromLocal.LocalPort
        && Destination == fromLocal.RemoteAddress && DestinationPort == fromLocal.RemotePort;
}

/// <summary>A connection (<see cref="ConnectionId"/> tells two connections on one tuple apart) changed state, on one host.</summary>
public sealed record StateEvent(TimeSpan At, string Host, FourTuple Tuple, long ConnectionId, TcpState From, TcpState To);

/// <summary>
/// Everything a run leaves behind that expectations and artifacts need: frames at the capture
/// point, state changes on every host, what each named socket sent, received and failed with,
/// and every host's counters at the end.
/// </summary>
public sealed class RunRecord
{
    private readonly Dictionary<string, NamedSocket> _sockets = new();
    private readonly List<StateEvent> _states = new();

    /// <param name="kernelHosts">Hosts that were the real Linux kernel (empty in simulation).</param>
    public RunRecord(IReadOnlyDictionary<string, Ipv4Address> hostAddresses, IReadOnlySet<string>? kernelHosts = null)
    {
        HostAddresses = hostAddresses;
        KernelHosts = kernelHosts ?? new HashSet<string>();
    }

    public IReadOnlyDictionary<string, Ipv4Address> HostAddresses { get; }
    public IReadOnlySet<string> KernelHosts { get; }
    /// <summary>True when some host was a real kernel: times carry its timer granularity and scheduling.</summary>
    public bool AgainstKernel => KernelHosts.Count > 0;
    public List<RecordedFrame> Frames { get; } = new();
    public IReadOnlyList<StateEvent> States => _states;
    /// <summary>Steps that could not be carried out, with their line and time: any makes the run fail.</summary>
    public List<string> StepFailures { get; } = new();

    /// <summary>A state was recorded or a socket got its connection (steps waiting on a state look again).</summary>
    public event Action? Changed;

    public void AddState(StateEvent change)
    {
        _states.Add(change);
        Changed?.Invoke();
    }

    /// <summary>Puts state changes reported late (a kernel's tracepoint) in time order, keeping the order of simultaneous ones.</summary>
    public void SortStatesByTime()
    {
        var sorted = _states.OrderBy(e => e.At).ToList();
        _states.Clear();
        _states.AddRange(sorted);
    }

    /// <summary>
    /// The socket has its connection: <paramref name="connectionId"/> where the host knows it
    /// (a managed stack); otherwise the connection on that tuple alive at <paramref name="at"/>.
    /// </summary>
    public void Bind(string socket, FourTuple tuple, long? connectionId, TimeSpan at)
    {
        NamedSocket s = _sockets[socket];
        s.Tuple = tuple;
        s.ConnectionId = connectionId;
        s.BoundAt = at;
        Changed?.Invoke();
    }
    public Dictionary<string, IReadOnlyDictionary<string, long>> Counters { get; } = new();
    /// <summary>`ss` snapshots of every host at chosen moments: (time, host, table text).</summary>
    public List<(TimeSpan At, string Host, string Table)> Snapshots { get; } = new();
    public IReadOnlyDictionary<string, NamedSocket> Sockets => _sockets;

    public NamedSocket Socket(string name, string host)
    {
        if (!_sockets.TryGetValue(name, out NamedSocket? socket)) _sockets.Add(name, socket = new NamedSocket(name, host));
        return socket;
    }

    public bool Matches(RecordedFrame frame, PacketPattern pattern)
    {
        if (pattern.After is { } after && frame.At < after) return false;
        if (pattern.Until is { } until && frame.At >= until) return false;
        if (pattern.From is { } from && frame.Source != HostAddresses[from]) return false;
        if (pattern.To is { } to && frame.Destination != HostAddresses[to]) return false;
        if (pattern.Flags is { } flags && (!frame.IsTcp || !flags.Matches(frame.Flags))) return false;
        if (pattern.Length is { } length && (!frame.IsTcp || !length.Contains((uint)frame.PayloadLength))) return false;
        if (pattern.Mss is { } mss && (frame.Mss is not { } option || !mss.Contains(option))) return false;
        if (pattern.Cause is { } cause && (frame.Comment is null || !frame.Comment.Contains(cause, StringComparison.OrdinalIgnoreCase))) return false;
        if (pattern.Label != TcpAnalysisFlags.None && (AnalysisOf(frame) & Filter(pattern.Label)) == 0) return false;
        return true;
    }

    /// <summary>
    /// What a label matches, as Wireshark's display filter of that name does: tcp.analysis.retransmission
    /// is set on fast and spurious retransmissions too (tcp_sequence_number_analysis_print_retransmission),
    /// though the Info column names only the more specific label.
    /// </summary>
    private static TcpAnalysisFlags Filter(TcpAnalysisFlags label) =>
        label == TcpAnalysisFlags.Retransmission
            ? label | TcpAnalysisFlags.FastRetransmission | TcpAnalysisFlags.SpuriousRetransmission
            : label;

    private Dictionary<RecordedFrame, TcpAnalysisFlags>? _analysis;

    /// <summary>
    /// Wireshark's TCP analysis flags of a captured frame (<see cref="TcpAnalyzer"/>, over the
    /// whole capture in order, as Wireshark reads the pcapng the run wrote).
    /// </summary>
    public TcpAnalysisFlags AnalysisOf(RecordedFrame frame)
    {
        if (_analysis is null || _analysis.Count != Frames.Count)
        {
            var analyzer = new TcpAnalyzer();
            _analysis = new Dictionary<RecordedFrame, TcpAnalysisFlags>(ReferenceEqualityComparer.Instance);
            for (int i = 0; i < Frames.Count; i++)
            {
                RecordedFrame f = Frames[i];
                _analysis[f] = LinkLayer.TryGetIpv4(LinkType.Ethernet, f.Data, out ReadOnlySpan<byte> datagram)
                    ? analyzer.Analyze(i + 1, f.UnixNanoseconds, datagram).Flags
                    : TcpAnalysisFlags.None;
            }
        }
        return _analysis[frame];
    }

    /// <summary>
    /// The id of the socket's connection in <see cref="States"/>: given by a managed host; for a
    /// kernel socket, the last connection born on its tuple before the socket had it.
    /// </summary>
    public long? ConnectionOf(string socket)
    {
        if (!_sockets.TryGetValue(socket, out NamedSocket? s) || s.Tuple is not { } tuple) return null;
        return s.ConnectionId ?? _states.LastOrDefault(e => e.Host == s.Host && e.Tuple == tuple && e.At <= s.BoundAt
                                                            && e.From is TcpState.Closed or TcpState.Listen)?.ConnectionId;
    }

    private IEnumerable<StateEvent> EventsOf(string socket)
    {
        if (ConnectionOf(socket) is not { } id) return [];
        string host = _sockets[socket].Host;
        return _states.Where(e => e.Host == host && e.ConnectionId == id);
    }

    /// <summary>The state of the socket's connection now (CLOSED before it has one).</summary>
    public TcpState CurrentState(string socket) => EventsOf(socket).LastOrDefault()?.To ?? TcpState.Closed;

    /// <summary>
    /// Sequence numbers for a segment into the socket's connection from its peer, read from the
    /// capture: the next sequence number the socket expects (its latest ACK), and everything it
    /// has sent acknowledged. Null when none of its segments passed the capture point.
    /// </summary>
    public (uint Seq, uint Ack)? NextSegmentInto(string socket)
    {
        if (!_sockets.TryGetValue(socket, out NamedSocket? s) || s.Tuple is not { } tuple) return null;
        RecordedFrame? last = Frames.LastOrDefault(f => f.Carries(tuple) && (f.Flags & TcpFlags.Ack) != 0);
        if (last is null) return null;
        uint sent = Frames.Where(f => f.Carries(tuple)).Select(f => f.SeqEnd).Aggregate(last.SeqEnd, (a, b) => (int)(b - a) > 0 ? b : a);
        return (last.Ack, sent);
    }

    /// <summary>Every state the socket's connection entered, in order, starting with its first (SYN_SENT or SYN_RECV).</summary>
    public IReadOnlyList<TcpState> StatePath(string socket) => EventsOf(socket).Select(e => e.To).ToList();

    public TcpState StateAt(string socket, TimeSpan at) =>
        EventsOf(socket).LastOrDefault(e => e.At <= at)?.To ?? TcpState.Closed;

    public (Errno Error, TimeSpan? At) ErrorOf(string socket) =>
        _sockets.TryGetValue(socket, out NamedSocket? s) ? (s.Error, s.ErrorAt) : (Errno.None, null);

    public long Counter(string host, string name) =>
        Counters.TryGetValue(host, out var counters) && counters.TryGetValue(name, out long value) ? value : 0;

    public (long Bytes, string Sha256) Received(string socket) =>
        _sockets.TryGetValue(socket, out NamedSocket? s) ? s.ReceivedDigest : (0, NamedSocket.EmptyDigest);

    public (long Bytes, string Sha256) Sent(string socket) =>
        _sockets.TryGetValue(socket, out NamedSocket? s) ? s.SentDigest : (0, NamedSocket.EmptyDigest);
}

/// <summary>What one application socket did: its connection, the bytes both ways (digested) and how it ended.</summary>
public sealed class NamedSocket(string name, string host)
{
    public static readonly string EmptyDigest = Convert.ToHexStringLower(SHA256.HashData([]));

    private readonly IncrementalHash _sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly IncrementalHash _received = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _sentBytes, _receivedBytes;
    private (long, string)? _sentDigest, _receivedDigest;

    public string Name { get; } = name;
    public string Host { get; } = host;
    public FourTuple? Tuple { get; set; }
    /// <summary>The connection's <see cref="TcpLab.Stack.Tcp.TcpFlow.ConnectionId"/> on a managed host.</summary>
    public long? ConnectionId { get; set; }
    /// <summary>When the socket got its connection (to find a kernel connection by tuple).</summary>
    public TimeSpan BoundAt { get; set; }
    public Errno Error { get; private set; }
    public TimeSpan? ErrorAt { get; private set; }

    public void RecordSent(ReadOnlySpan<byte> data)
    {
        _sent.AppendData(data);
        _sentBytes += data.Length;
    }

    public void RecordReceived(ReadOnlySpan<byte> data)
    {
        _received.AppendData(data);
        _receivedBytes += data.Length;
    }

    public void RecordError(Errno error, TimeSpan at)
    {
        if (Error != Errno.None || error == Errno.None) return;
        Error = error;
        ErrorAt = at;
    }

    public (long Bytes, string Sha256) SentDigest => _sentDigest ??= (_sentBytes, Convert.ToHexStringLower(_sent.GetHashAndReset()));
    public (long Bytes, string Sha256) ReceivedDigest => _receivedDigest ??= (_receivedBytes, Convert.ToHexStringLower(_received.GetHashAndReset()));
}
