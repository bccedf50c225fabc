using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>A capture sink that keeps the TCP segments hosts send (outbound frames only), decoded, in order.</summary>
public sealed class FrameLog : ICaptureSink
{
    public List<LoggedSegment> Segments { get; } = new();

    public int AddInterface(string name, int snapLength = PcapNgWriter.DefaultSnapLength) => 0;

    public void Record(int interfaceId, long timestamp, PacketDirection direction, ReadOnlySpan<byte> frame, ReadOnlySpan<char> comment)
    {
        if (direction != PacketDirection.Outbound) return;
        if (EthernetFrame.TryParse(frame, out EthernetFrame eth) != WireError.None || eth.EtherType != EtherType.Ipv4) return;
        if (Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip) != WireError.None || ip.Protocol != IpProtocol.Tcp) return;
        if (TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) != WireError.None) return;
        TcpHeader.Read(tcp, out TcpHeader header);
        long ns = timestamp - CaptureTime.UnixNanoseconds(SimulatedEventLoop.DefaultEpoch);
        Segments.Add(new LoggedSegment(new Instant(ns), ip.Source, ip.Destination, header, tcp.Payload.Length, comment.ToString()));
    }

    public IEnumerable<LoggedSegment> From(Ipv4Address source) => Segments.Where(s => s.Source == source);

    public string Dump() => string.Join("\n", Segments.Select(s => s.ToString()));
}

public sealed record LoggedSegment(Instant At, Ipv4Address Source, Ipv4Address Destination, TcpHeader Header, int Length, string Comment)
{
    public TcpFlags Flags => Header.Flags;
    public string FlagText => TcpHeader.FormatFlags(Header.Flags);
    public uint Seq => Header.SequenceNumber;
    public uint Ack => Header.AcknowledgmentNumber;
    public bool Is(TcpFlags exact) => Header.Flags == exact;

    public override string ToString() =>
        $"{At.TotalSeconds,12:F6} {Source}.{Header.SourcePort} > {Destination}.{Header.DestinationPort}: Flags [{FlagText}], seq {Seq}, ack {Ack}, win {Header.Window}, options [{Header.Options}], length {Length}  # {Comment}";
}
