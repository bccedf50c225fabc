using TcpLab.Lab.Trace;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Tests.Trace;

/// <summary>
/// A capture written segment by segment, for what neither the lab's stack nor Linux sends:
/// 1-byte zero-window probes (Linux probes with an old sequence number, which Wireshark calls a
/// keep-alive), a capture that misses a segment the receiver got, a 4-tuple reused with a new ISN,
/// and a SYN retransmitted after a RST.
/// </summary>
internal sealed class CraftedCapture : IDisposable
{
    private static readonly (Ipv4Address Address, ushort Port, MacAddress Mac) Client = (Ipv4Address.Parse("10.0.0.1"), 40000, new MacAddress(0x0200_0000_0001));
    private static readonly (Ipv4Address Address, ushort Port, MacAddress Mac) Server = (Ipv4Address.Parse("10.0.0.2"), 80, new MacAddress(0x0200_0000_0002));

    private readonly PcapNgWriter _writer;
    private readonly int _interface;
    private readonly byte[] _frame = new byte[2048];

    private CraftedCapture(string path)
    {
        _writer = PcapNgWriter.Create(path);
        _interface = _writer.AddInterface("crafted");
    }

    public void Dispose() => _writer.Dispose();

    /// <summary>The labels the scripted conversation of <see cref="Write"/> is meant to show.</summary>
    public const TcpAnalysisFlags Expected = TcpAnalysisFlags.WindowFull | TcpAnalysisFlags.ZeroWindow | TcpAnalysisFlags.ZeroWindowProbe
        | TcpAnalysisFlags.ZeroWindowProbeAck | TcpAnalysisFlags.WindowUpdate | TcpAnalysisFlags.LostSegment
        | TcpAnalysisFlags.AckedUnseenSegment | TcpAnalysisFlags.ReusedPorts | TcpAnalysisFlags.Retransmission;

    /// <summary>Writes the scripted conversation to <paramref name="path"/> (no window scaling, so windows read as sent).</summary>
    public static void Write(string path)
    {
        const TcpFlags Syn = TcpFlags.Syn, Ack = TcpFlags.Ack, SynAck = Syn | Ack, PushAck = TcpFlags.Psh | Ack;
        using var capture = new CraftedCapture(path);
        capture.Segment(0, fromClient: true, Syn, 1000, 0, 8192, 0);
        capture.Segment(10, fromClient: false, SynAck, 5000, 1001, 2000, 0);
        capture.Segment(20, fromClient: true, Ack, 1001, 5001, 8192, 0);
        capture.Segment(21, fromClient: true, Ack, 1001, 5001, 8192, 1000);
        capture.Segment(22, fromClient: true, PushAck, 2001, 5001, 8192, 1000);   // up to the server's window: full
        capture.Segment(31, fromClient: false, Ack, 5001, 3001, 0, 0);            // zero window
        capture.Segment(300, fromClient: true, PushAck, 3001, 5001, 8192, 1);     // a 1-byte probe
        capture.Segment(310, fromClient: false, Ack, 5001, 3001, 0, 0);           // still closed: the probe's ACK
        capture.Segment(900, fromClient: true, PushAck, 3001, 5001, 8192, 1);
        capture.Segment(910, fromClient: false, Ack, 5001, 3001, 0, 0);
        capture.Segment(1500, fromClient: false, Ack, 5001, 3001, 2000, 0);       // window update
        capture.Segment(1510, fromClient: true, PushAck, 3001, 5001, 8192, 1000);
        capture.Segment(1520, fromClient: false, Ack, 5001, 4001, 2000, 0);
        // The segment 4001:5001 went by uncaptured; the server ACKs it all the same.
        capture.Segment(1530, fromClient: true, PushAck, 5001, 5001, 8192, 1000);
        capture.Segment(1540, fromClient: false, Ack, 5001, 6001, 2000, 0);
        capture.Segment(1550, fromClient: true, TcpFlags.Rst, 6001, 0, 0, 0);
        capture.Segment(3000, fromClient: true, Syn, 90000, 0, 8192, 0);
        capture.Segment(3010, fromClient: false, SynAck, 70000, 90001, 4000, 0);
        capture.Segment(3020, fromClient: true, Ack, 90001, 70001, 8192, 0);
        // Once more with another ISN; a RST far ahead, then the SYN again: a retransmission, and
        // the data after it is in order (the SYN took nextseq back behind the RST).
        capture.Segment(4000, fromClient: true, Syn, 200000, 0, 8192, 0);
        capture.Segment(4010, fromClient: true, TcpFlags.Rst, 201000, 0, 0, 0);
        capture.Segment(5000, fromClient: true, Syn, 200000, 0, 8192, 0);
        capture.Segment(5010, fromClient: false, SynAck, 300000, 200001, 4000, 0);
        capture.Segment(5020, fromClient: true, PushAck, 200001, 300001, 8192, 100);
    }

    private void Segment(int milliseconds, bool fromClient, TcpFlags flags, uint seq, uint ack, ushort window, int length)
    {
        var (from, to) = fromClient ? (Client, Server) : (Server, Client);
        var tcp = new TcpHeader
        {
            SourcePort = from.Port,
            DestinationPort = to.Port,
            SequenceNumber = seq,
            AcknowledgmentNumber = ack,
            Flags = flags,
            Window = window,
        };
        if ((flags & TcpFlags.Syn) != 0) tcp.Options.SetMss(1460);
        int tcpLength = tcp.Length + length;
        EthernetFrame.WriteHeader(_frame, to.Mac, from.Mac, EtherType.Ipv4);
        Span<byte> ip = _frame.AsSpan(EthernetFrame.HeaderLength);
        new Ipv4Header(from.Address, to.Address, IpProtocol.Tcp, tcpLength).Write(ip);
        Span<byte> segment = ip.Slice(Ipv4Header.Length, tcpLength);
        segment.Clear();
        tcp.Write(segment);
        segment[tcp.Length..].Fill((byte)'x');
        TcpHeader.WriteChecksum(segment, from.Address, to.Address);
        long timestamp = CaptureTime.UnixNanoseconds(SimulatedEventLoop.DefaultEpoch) + milliseconds * 1_000_000L;
        _writer.Record(_interface, timestamp, PacketDirection.Unknown,
            _frame.AsSpan(0, EthernetFrame.HeaderLength + Ipv4Header.Length + tcpLength), default);
    }
}
