using System.Security.Cryptography;
using TcpLab.Stack;
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

    public RunRecord(IReadOnlyDictionary<string, Ipv4Address> hostAddresses) => HostAddresses = hostAddresses;

    public IReadOnlyDictionary<string, Ipv4Address> HostAddresses { get; }
    public List<RecordedFrame> Frames { get; } = new();
    public List<StateEvent> States { get; } = new();
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
        if (pattern.From is { } from && frame.Source != HostAddresses[from]) return false;
        if (pattern.To is { } to && frame.Destination != HostAddresses[to]) return false;
        if (pattern.Flags is { } flags && (!frame.IsTcp || !flags.Matches(frame.Flags))) return false;
        if (pattern.Length is { } length && (!frame.IsTcp || !length.Contains((uint)frame.PayloadLength))) return false;
        if (pattern.Cause is { } cause && (frame.Comment is null || !frame.Comment.Contains(cause, StringComparison.OrdinalIgnoreCase))) return false;
        return true;
    }

    private IEnumerable<StateEvent> EventsOf(string socket) =>
        _sockets.TryGetValue(socket, out NamedSocket? s) && s.ConnectionId is { } id
            ? States.Where(e => e.Host == s.Host && e.ConnectionId == id)
            : [];

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
    /// <summary>The connection's <see cref="TcpLab.Stack.Tcp.TcpFlow.ConnectionId"/> on its host, once it exists.</summary>
    public long? ConnectionId { get; set; }
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
