using System.Buffers.Binary;
using FsCheck.Fluent;
using TcpLab.Stack.Wire;
using static TcpLab.Stack.Tests.Wire.WireFrames;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>Build with our writers, parse with our views: every field comes back.</summary>
public class RoundTripTests
{
    [Fact]
    public void Ethernet_header_round_trips_for_any_addresses_and_type() =>
        Holds(Gen.Zip(AnyMac.Two(), AnyUInt16), t =>
        {
            var ((dst, src), type) = t;
            var frame = new byte[EthernetFrame.HeaderLength + 3];
            EthernetFrame.WriteHeader(frame, dst, src, (EtherType)type);
            frame[^1] = 0x5A;

            Assert.Equal(WireError.None, EthernetFrame.TryParse(frame, out EthernetFrame view));
            Assert.Equal((dst, src, (EtherType)type), (view.Destination, view.Source, view.EtherType));
            Assert.Equal([0, 0, 0x5A], view.Payload.ToArray());
        }, t => t.ToString());

    [Fact]
    public void Arp_packet_round_trips() =>
        Holds(ValidArp, arp =>
        {
            var bytes = new byte[ArpPacket.Length];
            arp.Write(bytes);
            Assert.Equal(WireError.None, ArpPacket.TryParse(bytes, out ArpPacket parsed));
            Assert.Equal(arp, parsed);
            Assert.Equal([0x00, 0x01, 0x08, 0x00, 6, 4], bytes[..6]); // htype Ethernet, ptype IPv4, hlen 6, plen 4
        }, arp => arp.ToString());

    [Fact]
    public void Ipv4_header_round_trips_with_a_valid_checksum() =>
        Holds(ValidIpv4Header, header =>
        {
            var datagram = new byte[Ipv4Header.Length + header.PayloadLength];
            header.Write(datagram);

            Assert.Equal(0xFFFF, ReferenceSum(datagram.AsSpan(0, Ipv4Header.Length)));
            Assert.Equal(WireError.None, Ipv4Packet.TryParse(datagram, out Ipv4Packet packet));
            Assert.Equal(header, Ipv4Header.From(packet));
            Assert.Equal((4, 20, datagram.Length), (packet.Version, packet.HeaderLength, packet.TotalLength));
            Assert.Equal(header.MoreFragments || header.FragmentOffset != 0, packet.IsFragment);
            Assert.Equal(header.PayloadLength, packet.Payload.Length);
            Assert.True(packet.Options.IsEmpty);
        }, h => h.ToString(), tests: 500);

    [Fact]
    public void Ipv4_packet_is_trimmed_to_its_total_length_dropping_link_padding()
    {
        // A 40-byte datagram in a minimum-size 60-byte Ethernet frame: 6 bytes of padding follow it.
        byte[] frame = TcpFrame(DataSegmentHeader() with { Options = default }, []);
        byte[] padded = [.. frame, 0, 0, 0, 0, 0, 0];

        Assert.Equal(WireError.None, EthernetFrame.TryParse(padded, out EthernetFrame eth));
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip));
        Assert.Equal(40, ip.Bytes.Length);
        Assert.Equal(WireError.None, TcpSegment.TryParse(ip.Payload, out TcpSegment segment));
        Assert.True(segment.Payload.IsEmpty);
        Assert.True(segment.HasValidChecksum(ip.Source, ip.Destination));
    }

    [Fact]
    public void Ipv4_options_are_skipped_and_the_payload_starts_after_them()
    {
        // IHL 6: one word of options (NOP NOP NOP EOL) before the payload.
        byte[] datagram = new byte[24 + 4];
        new Ipv4Header(ClientIp, ServerIp, IpProtocol.Udp, 8).Write(datagram);
        datagram[0] = 0x46;
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(2), 28);
        datagram.AsSpan(20, 4).Fill(1);
        datagram[23] = 0;
        datagram.AsSpan(24).Fill(0xEE);
        RefreshIpv4Checksum(datagram, 24);

        Assert.Equal(WireError.None, Ipv4Packet.TryParse(datagram, out Ipv4Packet ip));
        Assert.Equal(24, ip.HeaderLength);
        Assert.Equal([1, 1, 1, 0], ip.Options.ToArray());
        Assert.Equal([0xEE, 0xEE, 0xEE, 0xEE], ip.Payload.ToArray());
    }

    [Fact]
    public void Icmp_message_round_trips_with_a_valid_checksum() =>
        Holds(Together(Gen.Zip(AnyByte, AnyByte), Gen.Zip(AnyUInt16, AnyUInt16), AnyByte.ArrayOf()), t =>
        {
            var ((type, code), (id, seq), data) = t;
            var message = new byte[IcmpMessage.HeaderLength + data.Length];
            data.CopyTo(message, IcmpMessage.HeaderLength);
            IcmpMessage.WriteHeader(message, (IcmpType)type, code, id, seq);

            Assert.Equal(0xFFFF, ReferenceSum(message));
            Assert.Equal(WireError.None, IcmpMessage.TryParse(message, out IcmpMessage icmp));
            Assert.Equal(((IcmpType)type, code, id, seq), (icmp.Type, icmp.Code, icmp.Identifier, icmp.SequenceNumber));
            Assert.Equal(seq, icmp.NextHopMtu); // the same 16 bits, read as RFC 1191's next-hop MTU
            Assert.Equal(data, icmp.Data.ToArray());
        }, t => $"type {t.Item1.Item1} code {t.Item1.Item2} id {t.Item2.Item1} seq {t.Item2.Item2} data {Convert.ToHexString(t.Item3)}");

    [Fact]
    public void Tcp_options_round_trip_in_a_multiple_of_four_bytes() =>
        Holds(ValidTcpOptions, options =>
        {
            var bytes = new byte[TcpOptions.MaxLength];
            int written = options.Write(bytes);

            Assert.Equal(options.EncodedLength, written);
            Assert.Equal(0, written % 4);
            Assert.InRange(written, 0, TcpOptions.MaxLength);
            Assert.Equal(WireError.None, TcpOptions.Parse(bytes.AsSpan(0, written), out TcpOptions parsed));
            Assert.Equal(Fields(options), Fields(parsed));
            Assert.True(options.Equals(parsed));
        }, o => Show(o), tests: 3_000);

    [Fact]
    public void Tcp_header_round_trips_with_its_options() =>
        Holds(ValidTcpHeader, header =>
        {
            var bytes = new byte[60];
            int length = header.Write(bytes);

            Assert.Equal(header.Length, length);
            Assert.Equal(WireError.None, TcpSegment.TryParse(bytes.AsSpan(0, length), out TcpSegment segment));
            Assert.Equal(length, segment.HeaderLength);
            Assert.Equal(0, segment.Checksum); // Write leaves it for WriteChecksum
            Assert.Equal(WireError.None, TcpHeader.Read(segment, out TcpHeader parsed));
            Assert.Equal(Fields(header), Fields(parsed));
        }, h => Show(h), tests: 2_000);

    [Fact]
    public void Tcp_frame_with_payload_round_trips_through_every_layer_with_valid_checksums() =>
        Holds(Together(ValidTcpHeader, AnyByte.ArrayOf(), Gen.Zip(AnyIpv4, AnyIpv4)), t =>
        {
            var (header, payload, (source, destination)) = t;
            byte[] frame = TcpFrame(header, payload, source, destination);

            Assert.Equal(WireError.None, EthernetFrame.TryParse(frame, out EthernetFrame eth));
            Assert.Equal(EtherType.Ipv4, eth.EtherType);
            Assert.Equal(WireError.None, Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip));
            Assert.Equal((IpProtocol.Tcp, source, destination), (ip.Protocol, ip.Source, ip.Destination));
            Assert.Equal(WireError.None, TcpSegment.TryParse(ip.Payload, out TcpSegment segment));
            Assert.True(segment.HasValidChecksum(source, destination));
            // Independently: pseudo-header + segment by the RFC 1071 reference sums to 0xFFFF.
            Assert.Equal(0xFFFF, ReferenceSum(ip.Payload, ReferencePseudoHeaderSum(source, destination, ip.Payload.Length)));
            Assert.Equal(WireError.None, TcpHeader.Read(segment, out TcpHeader parsed));
            Assert.Equal(Fields(header), Fields(parsed));
            Assert.Equal(payload, segment.Payload.ToArray());
        }, t => $"{Show(t.Item1)} payload {t.Item2.Length} bytes, {t.Item3}", tests: 500);

    [Fact]
    public void Offloaded_checksum_completed_as_a_nic_would_verifies()
    {
        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum; the device sums the
        // segment from the TCP header on and stores the complement in the same field.
        byte[] frame = TcpFrame(DataSegmentHeader(), "offloaded"u8);
        Span<byte> segment = frame.AsSpan(EthernetIpv4Header);
        TcpHeader.WritePseudoHeaderChecksum(segment, ClientIp, ServerIp);
        Assert.Equal(ReferenceSum([], ReferencePseudoHeaderSum(ClientIp, ServerIp, segment.Length)), BinaryPrimitives.ReadUInt16BigEndian(segment[16..]));

        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], (ushort)~ReferenceSum(segment));

        Assert.Equal(WireError.None, TcpSegment.TryParse(segment, out TcpSegment parsed));
        Assert.True(parsed.HasValidChecksum(ClientIp, ServerIp));
    }
}
