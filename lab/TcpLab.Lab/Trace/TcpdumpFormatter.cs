using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Trace;

/// <summary>How timestamps are printed: tcpdump's default wall clock, or time since the first packet (tcpdump -ttttt).</summary>
public enum TraceTime { Absolute, SinceFirst }

/// <summary>
/// Prints frames the way `tcpdump -n` does (tcpdump 4.99): "HH:MM:SS.uuuuuu IP a.p > b.q: Flags [S.],
/// seq 1, ack 2, win 65160, options [mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7], length 0".
/// Like tcpdump it numbers TCP sequence and acknowledgment numbers relative to the connection's
/// first ACK-bearing segment unless asked for absolute numbers (-S). One formatter per capture:
/// it remembers connections.
/// </summary>
public sealed class TcpdumpFormatter(TraceTime time = TraceTime.Absolute, bool absoluteSequence = false)
{
    private readonly Dictionary<(Ipv4Address, ushort, Ipv4Address, ushort), (uint Seq, uint Ack)> _connections = new();
    private long? _firstTimestamp;

    /// <summary>One line for an Ethernet frame captured at <paramref name="unixNanoseconds"/>.</summary>
    public string Format(long unixNanoseconds, ReadOnlySpan<byte> frame) => Format(unixNanoseconds, LinkType.Ethernet, frame);

    /// <summary>
    /// One line for a frame of <paramref name="linkType"/>. Other link layers than Ethernet print
    /// as tcpdump prints them without -e: the IPv4 line alone. (For Linux cooked v2 tcpdump also
    /// names the interface, looking its index up on the machine that reads the file; that is left out.)
    /// </summary>
    public string Format(long unixNanoseconds, LinkType linkType, ReadOnlySpan<byte> frame)
    {
        var line = new StringBuilder(160);
        AppendTime(line, unixNanoseconds);
        line.Append(' ');
        if (linkType == LinkType.Ethernet) AppendEthernet(line, frame);
        else if (LinkLayer.TryGetIpv4(linkType, frame, out ReadOnlySpan<byte> datagram)) AppendIpv4(line, datagram);
        else line.Append(CultureInfo.InvariantCulture, $"[|link-type {(ushort)linkType}] length {frame.Length}");
        return line.ToString();
    }

    private void AppendTime(StringBuilder line, long ns)
    {
        _firstTimestamp ??= ns;
        long micros;
        if (time == TraceTime.SinceFirst)
        {
            micros = (ns - _firstTimestamp.Value) / 1000;
            line.Append(' ');   // tcpdump -ttttt prints a leading space
        }
        else
        {
            long dayMicros = 86_400_000_000L;
            micros = ((ns / 1000) % dayMicros + dayMicros) % dayMicros;   // UTC time of day
        }
        long seconds = micros / 1_000_000;
        line.Append(CultureInfo.InvariantCulture, $"{seconds / 3600:D2}:{seconds / 60 % 60:D2}:{seconds % 60:D2}.{micros % 1_000_000:D6}");
    }

    private void AppendEthernet(StringBuilder line, ReadOnlySpan<byte> frame)
    {
        if (EthernetFrame.TryParse(frame, out EthernetFrame ethernet) != WireError.None)
        {
            line.Append(CultureInfo.InvariantCulture, $"[|ether] length {frame.Length}");
            return;
        }
        switch (ethernet.EtherType)
        {
            case EtherType.Arp:
                AppendArp(line, ethernet.Payload);
                break;
            case EtherType.Ipv4:
                AppendIpv4(line, ethernet.Payload);
                break;
            default:
                line.Append(CultureInfo.InvariantCulture, $"ethertype 0x{(ushort)ethernet.EtherType:x4}, length {frame.Length}");
                break;
        }
    }

    private static void AppendArp(StringBuilder line, ReadOnlySpan<byte> payload)
    {
        if (ArpPacket.TryParse(payload, out ArpPacket arp) != WireError.None)
        {
            line.Append(CultureInfo.InvariantCulture, $"ARP, [|arp] length {payload.Length}");
            return;
        }
        line.Append(arp.Operation == ArpOperation.Request
            ? $"ARP, Request who-has {arp.TargetIp} tell {arp.SenderIp}"
            : $"ARP, Reply {arp.SenderIp} is-at {arp.SenderMac}");
        line.Append(CultureInfo.InvariantCulture, $", length {payload.Length}");
    }

    private void AppendIpv4(StringBuilder line, ReadOnlySpan<byte> payload)
    {
        if (Ipv4Packet.TryParse(payload, out Ipv4Packet ip, verifyChecksum: false) != WireError.None)
        {
            line.Append(CultureInfo.InvariantCulture, $"IP [|ip] length {payload.Length}");
            return;
        }
        line.Append("IP ");
        if (ip.FragmentOffset != 0)
        {
            // Later fragments carry no transport header: tcpdump names only the protocol.
            line.Append(CultureInfo.InvariantCulture, $"{ip.Source} > {ip.Destination}: {ProtocolName(ip.Protocol)}");
            return;
        }
        switch (ip.Protocol)
        {
            case IpProtocol.Tcp when TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) == WireError.None:
                AppendTcp(line, ip, tcp);
                break;
            case IpProtocol.Icmp when IcmpMessage.TryParse(ip.Payload, out IcmpMessage icmp, verifyChecksum: false) == WireError.None:
                line.Append(CultureInfo.InvariantCulture, $"{ip.Source} > {ip.Destination}: ICMP ");
                AppendIcmp(line, icmp, ip.TotalLength - ip.HeaderLength);
                break;
            default:
                line.Append(CultureInfo.InvariantCulture, $"{ip.Source} > {ip.Destination}: {ProtocolName(ip.Protocol)}");
                break;
        }
    }

    private static string ProtocolName(IpProtocol protocol) => protocol switch
    {
        IpProtocol.Tcp => "tcp",
        IpProtocol.Udp => "udp",
        IpProtocol.Icmp => "ICMP",
        _ => $"ip-proto-{(byte)protocol}",
    };

    private static void AppendIcmp(StringBuilder line, in IcmpMessage icmp, int length)
    {
        switch (icmp.Type)
        {
            case IcmpType.EchoRequest:
            case IcmpType.EchoReply:
                line.Append(CultureInfo.InvariantCulture,
                    $"echo {(icmp.Type == IcmpType.EchoRequest ? "request" : "reply")}, id {icmp.Identifier}, seq {icmp.SequenceNumber}, length {length}");
                return;
            case IcmpType.DestinationUnreachable when icmp.Data.Length >= 28
                && Ipv4Packet.TryParse(icmp.Data, out Ipv4Packet quoted, verifyChecksum: false) is WireError.None or WireError.Truncated:
                var inner = icmp.Data;
                var destination = Ipv4Address.Read(inner[16..]);
                int headerLength = (inner[0] & 0x0F) * 4;
                string what = (UnreachableCode)icmp.Code switch
                {
                    UnreachableCode.Port when inner.Length >= headerLength + 4 =>
                        $"{destination} {ProtocolName((IpProtocol)inner[9])} port {BinaryPrimitives.ReadUInt16BigEndian(inner[(headerLength + 2)..])} unreachable",
                    UnreachableCode.Protocol => $"{destination} protocol {inner[9]} unreachable",
                    UnreachableCode.Host => $"host {destination} unreachable",
                    UnreachableCode.Network => $"net {destination} unreachable",
                    _ => $"{destination} unreachable - code {icmp.Code}",
                };
                line.Append(CultureInfo.InvariantCulture, $"{what}, length {length}");
                return;
            case IcmpType.TimeExceeded:
                line.Append(CultureInfo.InvariantCulture, $"{(icmp.Code == 1 ? "ip reassembly time exceeded" : "time exceeded in-transit")}, length {length}");
                return;
            default:
                line.Append(CultureInfo.InvariantCulture, $"type-#{(byte)icmp.Type}, length {length}");
                return;
        }
    }

    private void AppendTcp(StringBuilder line, in Ipv4Packet ip, in TcpSegment tcp)
    {
        line.Append(CultureInfo.InvariantCulture, $"{ip.Source}.{tcp.SourcePort} > {ip.Destination}.{tcp.DestinationPort}: Flags [{TcpHeader.FormatFlags(tcp.Flags)}]");
        uint seq = tcp.SequenceNumber, ack = tcp.AcknowledgmentNumber;
        uint ackOrigin = 0;
        if (!absoluteSequence && (tcp.Flags & TcpFlags.Ack) != 0)
        {
            // print-tcp.c keeps one entry per connection, made by its first ACK-bearing segment
            // (which prints absolute): our ISN is seq, the peer's is ack - 1. Later segments in
            // either direction print relative to those.
            var forward = (ip.Source, tcp.SourcePort, ip.Destination, tcp.DestinationPort);
            var reverse = (ip.Destination, tcp.DestinationPort, ip.Source, tcp.SourcePort);
            if (_connections.TryGetValue(forward, out var mine))
            {
                seq = unchecked(seq - mine.Seq);
                ack = unchecked(ack - mine.Ack);
                ackOrigin = mine.Ack;
            }
            else if (_connections.TryGetValue(reverse, out var theirs))
            {
                seq = unchecked(seq - theirs.Ack);
                ack = unchecked(ack - theirs.Seq);
                ackOrigin = theirs.Seq;
            }
            else
            {
                _connections[forward] = (seq, unchecked(ack - 1));
            }
        }
        int length = tcp.Payload.Length;
        if (length > 0 || (tcp.Flags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst)) != 0)
        {
            line.Append(CultureInfo.InvariantCulture, $", seq {seq}");
            if (length > 0) line.Append(CultureInfo.InvariantCulture, $":{unchecked(seq + (uint)length)}");
        }
        if ((tcp.Flags & TcpFlags.Ack) != 0) line.Append(CultureInfo.InvariantCulture, $", ack {ack}");
        line.Append(CultureInfo.InvariantCulture, $", win {tcp.Window}");
        if ((tcp.Flags & TcpFlags.Urg) != 0) line.Append(CultureInfo.InvariantCulture, $", urg {tcp.UrgentPointer}");
        if (tcp.OptionBytes.Length > 0)
        {
            line.Append(", options [");
            AppendOptions(line, tcp.OptionBytes, ackOrigin);
            line.Append(']');
        }
        line.Append(CultureInfo.InvariantCulture, $", length {length}");
    }

    /// <summary>Options in wire order, NOPs included, as tcpdump lists them; SACK edges relative like the ack.</summary>
    private static void AppendOptions(StringBuilder line, ReadOnlySpan<byte> options, uint ackOrigin)
    {
        bool first = true;
        int i = 0;
        while (i < options.Length)
        {
            if (!first) line.Append(',');
            first = false;
            byte kind = options[i];
            if (kind == (byte)TcpOptionKind.NoOperation) { line.Append("nop"); i++; continue; }
            if (kind == (byte)TcpOptionKind.EndOfList) { line.Append("eol"); i++; break; }
            if (i + 1 >= options.Length || options[i + 1] < 2 || i + options[i + 1] > options.Length)
            {
                line.Append("[bad opt]");
                break;
            }
            int size = options[i + 1];
            ReadOnlySpan<byte> value = options.Slice(i + 2, size - 2);
            switch ((TcpOptionKind)kind)
            {
                case TcpOptionKind.MaximumSegmentSize when size == 4:
                    line.Append(CultureInfo.InvariantCulture, $"mss {BinaryPrimitives.ReadUInt16BigEndian(value)}");
                    break;
                case TcpOptionKind.WindowScale when size == 3:
                    line.Append(CultureInfo.InvariantCulture, $"wscale {value[0]}");
                    break;
                case TcpOptionKind.SackPermitted when size == 2:
                    line.Append("sackOK");
                    break;
                case TcpOptionKind.Timestamp when size == 10:
                    line.Append(CultureInfo.InvariantCulture, $"TS val {BinaryPrimitives.ReadUInt32BigEndian(value)} ecr {BinaryPrimitives.ReadUInt32BigEndian(value[4..])}");
                    break;
                case TcpOptionKind.Sack when (size - 2) % 8 == 0:
                    line.Append(CultureInfo.InvariantCulture, $"sack {(size - 2) / 8} ");
                    for (int b = 0; b + 8 <= value.Length; b += 8)
                    {
                        uint left = unchecked(BinaryPrimitives.ReadUInt32BigEndian(value[b..]) - ackOrigin);
                        uint right = unchecked(BinaryPrimitives.ReadUInt32BigEndian(value[(b + 4)..]) - ackOrigin);
                        line.Append(CultureInfo.InvariantCulture, $"{{{left}:{right}}}");
                    }
                    break;
                case TcpOptionKind.FastOpen:
                    line.Append(value.Length == 0 ? "tfo  cookiereq" : $"tfo  cookie {Convert.ToHexStringLower(value)}");
                    break;
                case TcpOptionKind.Experimental when value.Length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(value) == TcpOptions.FastOpenMagic:
                    line.Append(value.Length == 2 ? "tfo  cookiereq" : $"tfo  cookie {Convert.ToHexStringLower(value[2..])}");
                    break;
                default:
                    line.Append(CultureInfo.InvariantCulture, $"unknown-{kind} 0x{Convert.ToHexStringLower(value)}");
                    break;
            }
            i += size;
        }
    }
}
