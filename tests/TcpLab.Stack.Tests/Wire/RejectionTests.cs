using System.Buffers.Binary;
using TcpLab.Stack.Wire;
using static TcpLab.Stack.Tests.Wire.WireFrames;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>Each parser refuses each kind of bad input with the WireError that names it.</summary>
public class RejectionTests
{
    private static readonly byte[] ArpBytes = ArpFrame(new ArpPacket(ArpOperation.Request, ClientMac, ClientIp, MacAddress.Zero, ServerIp))[EthernetFrame.HeaderLength..];
    private static readonly byte[] TcpDatagram = TcpFrame(LinuxSynHeader(), "data"u8)[EthernetFrame.HeaderLength..];
    private static readonly byte[] TcpSegmentBytes = TcpDatagram[Ipv4Header.Length..];

    // ---- Truncation below every minimum ----

    [Fact]
    public void Every_parser_rejects_every_length_below_its_fixed_header_as_truncated()
    {
        byte[] frame = TcpFrame(DataSegmentHeader(), "x"u8);
        for (int n = 0; n < EthernetFrame.HeaderLength; n++)
            Assert.Equal(WireError.Truncated, EthernetFrame.TryParse(frame.AsSpan(0, n), out _));
        for (int n = 0; n < ArpPacket.Length; n++)
            Assert.Equal(WireError.Truncated, ArpPacket.TryParse(ArpBytes.AsSpan(0, n), out _));
        for (int n = 0; n < Ipv4Packet.MinHeaderLength; n++)
            Assert.Equal(WireError.Truncated, Ipv4Packet.TryParse(TcpDatagram.AsSpan(0, n), out _));
        byte[] icmp = IcmpFrame(IcmpType.EchoRequest, 0, 1, 1, [])[EthernetIpv4Header..];
        for (int n = 0; n < IcmpMessage.HeaderLength; n++)
            Assert.Equal(WireError.Truncated, IcmpMessage.TryParse(icmp.AsSpan(0, n), out _));
        for (int n = 0; n < TcpSegment.MinHeaderLength; n++)
            Assert.Equal(WireError.Truncated, TcpSegment.TryParse(TcpSegmentBytes.AsSpan(0, n), out _));
    }

    [Fact]
    public void Ipv4_datagram_cut_short_of_its_total_length_is_truncated_at_every_length()
    {
        // Header intact, total length says more bytes than arrive: Linux's "packet too small".
        for (int n = Ipv4Header.Length; n < TcpDatagram.Length; n++)
            Assert.Equal(WireError.Truncated, Ipv4Packet.TryParse(TcpDatagram.AsSpan(0, n), out _));
    }

    [Fact]
    public void Tcp_segment_cut_inside_its_options_has_a_bad_data_offset_at_every_length()
    {
        int headerLength = LinuxSynHeader().Length;
        for (int n = TcpSegment.MinHeaderLength; n < headerLength; n++)
            Assert.Equal(WireError.BadDataOffset, TcpSegment.TryParse(TcpSegmentBytes.AsSpan(0, n), out _));
        Assert.Equal(WireError.None, TcpSegment.TryParse(TcpSegmentBytes.AsSpan(0, headerLength), out _));
    }

    // ---- ARP ----

    [Theory]
    [InlineData(0, 0x00, 0x06, "hardware type 6 (IEEE 802)")]
    [InlineData(2, 0x86, 0xDD, "protocol type IPv6")]
    [InlineData(4, 0x08, 0x04, "hardware length 8, protocol length 4")]
    [InlineData(4, 0x06, 0x10, "protocol length 16")]
    public void Arp_for_other_than_ethernet_and_ipv4_is_unsupported(int offset, byte high, byte low, string what)
    {
        byte[] arp = ArpBytes.ToArray();
        arp[offset] = high;
        arp[offset + 1] = low;
        Assert.True(WireError.Unsupported == ArpPacket.TryParse(arp, out _), what);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)] // RARP request
    [InlineData(0xFFFF)]
    public void Arp_with_an_opcode_other_than_request_or_reply_is_a_bad_field(int opcode)
    {
        byte[] arp = ArpBytes.ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(6), (ushort)opcode);
        Assert.Equal(WireError.BadField, ArpPacket.TryParse(arp, out _));
    }

    // ---- IPv4, in ip_rcv_core()'s order ----

    private static byte[] EditIpv4(Action<byte[]> edit, bool refreshChecksum = true)
    {
        byte[] datagram = TcpDatagram.ToArray();
        edit(datagram);
        if (refreshChecksum) RefreshIpv4Checksum(datagram, Math.Max(20, Math.Min((datagram[0] & 0xF) * 4, datagram.Length)));
        return datagram;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(15)]
    public void Ipv4_version_other_than_4_is_a_bad_version(int version)
    {
        byte[] datagram = EditIpv4(d => d[0] = (byte)(version << 4 | 5));
        Assert.Equal(WireError.BadVersion, Ipv4Packet.TryParse(datagram, out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    public void Ipv4_header_length_below_5_words_is_a_bad_header_length(int ihl)
    {
        byte[] datagram = EditIpv4(d => d[0] = (byte)(0x40 | ihl), refreshChecksum: false);
        Assert.Equal(WireError.BadHeaderLength, Ipv4Packet.TryParse(datagram, out _));
    }

    [Fact]
    public void Ipv4_header_length_past_the_bytes_is_a_bad_header_length()
    {
        byte[] datagram = EditIpv4(d => d[0] = 0x4F); // 60-byte header
        Assert.Equal(WireError.BadHeaderLength, Ipv4Packet.TryParse(datagram.AsSpan(0, 59), out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    public void Ipv4_total_length_below_the_header_length_is_a_bad_total_length(int total)
    {
        byte[] datagram = EditIpv4(d => BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(2), (ushort)total));
        Assert.Equal(WireError.BadTotalLength, Ipv4Packet.TryParse(datagram, out _));
    }

    [Fact]
    public void Ipv4_total_length_above_the_bytes_received_is_truncated()
    {
        byte[] datagram = EditIpv4(d => BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(2), (ushort)(d.Length + 1)));
        Assert.Equal(WireError.Truncated, Ipv4Packet.TryParse(datagram, out _));
    }

    [Fact]
    public void Ipv4_header_checksum_is_checked_over_every_header_bit_unless_asked_not_to()
    {
        for (int bit = 0; bit < Ipv4Header.Length * 8; bit++)
        {
            byte[] datagram = TcpDatagram.ToArray();
            datagram[bit / 8] ^= (byte)(0x80 >> (bit % 8));
            WireError error = Ipv4Packet.TryParse(datagram, out _);
            if (bit / 8 == 0) Assert.True(error is WireError.BadVersion or WireError.BadHeaderLength or WireError.BadChecksum, $"bit {bit}: {error}");
            else Assert.True(WireError.BadChecksum == error, $"bit {bit}: {error}");
        }

        byte[] badChecksum = TcpDatagram.ToArray();
        badChecksum[11] ^= 1;
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(badChecksum, out _, verifyChecksum: false));
    }

    [Fact]
    public void Ipv4_checksum_is_checked_before_the_total_length_as_in_ip_rcv_core()
    {
        byte[] datagram = TcpDatagram.ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(2), 10); // total < IHL, checksum now stale
        Assert.Equal(WireError.BadChecksum, Ipv4Packet.TryParse(datagram, out _));
    }

    // ---- ICMP ----

    [Fact]
    public void Icmp_with_any_bit_flipped_fails_its_checksum()
    {
        byte[] message = IcmpFrame(IcmpType.EchoRequest, 0, 0x4d40, 1, "0123456789abcdefghijklmnopqrstuvwxyz!"u8)[EthernetIpv4Header..];
        Assert.Equal(WireError.None, IcmpMessage.TryParse(message, out _));
        for (int bit = 0; bit < message.Length * 8; bit++)
        {
            byte[] flipped = message.ToArray();
            flipped[bit / 8] ^= (byte)(0x80 >> (bit % 8));
            Assert.True(WireError.BadChecksum == IcmpMessage.TryParse(flipped, out _), $"bit {bit}");
            Assert.Equal(WireError.None, IcmpMessage.TryParse(flipped, out _, verifyChecksum: false));
        }
    }

    // ---- TCP header ----

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void Tcp_data_offset_below_5_words_is_bad(int words)
    {
        byte[] segment = TcpSegmentBytes.ToArray();
        segment[12] = (byte)(words << 4);
        Assert.Equal(WireError.BadDataOffset, TcpSegment.TryParse(segment, out _));
    }

    [Fact]
    public void Tcp_data_offset_past_the_segment_is_bad()
    {
        byte[] segment = TcpSegmentBytes.AsSpan(0, 40).ToArray(); // the SYN's 40-byte header, no payload
        segment[12] = 11 << 4;                                    // says 44
        Assert.Equal(WireError.BadDataOffset, TcpSegment.TryParse(segment, out _));
    }

    [Fact]
    public void Tcp_checksum_covers_the_pseudo_header_and_every_segment_bit()
    {
        Assert.Equal(WireError.None, TcpSegment.TryParse(TcpSegmentBytes, out TcpSegment intact));
        Assert.True(intact.HasValidChecksum(ClientIp, ServerIp));
        Assert.False(intact.HasValidChecksum(ClientIp, new Ipv4Address(ServerIp.Value ^ 0x100)));
        Assert.False(intact.HasValidChecksum(new Ipv4Address(ClientIp.Value + 1), ServerIp));

        for (int bit = 0; bit < TcpSegmentBytes.Length * 8; bit++)
        {
            byte[] flipped = TcpSegmentBytes.ToArray();
            flipped[bit / 8] ^= (byte)(0x80 >> (bit % 8));
            if (TcpSegment.TryParse(flipped, out TcpSegment segment) == WireError.None) // data offset bits may break the parse first
                Assert.False(segment.HasValidChecksum(ClientIp, ServerIp), $"bit {bit}");
        }
    }

    // ---- TCP options, as tcp_parse_options() treats them ----

    private static WireError ParseOptions(byte[] options, out TcpOptions parsed) => TcpOptions.Parse(options, out parsed);

    [Theory]
    [InlineData(new byte[] { 8, 0, 0, 0 }, "length 0")]
    [InlineData(new byte[] { 2, 1, 0, 0 }, "length 1")]
    [InlineData(new byte[] { 1, 1, 1, 1, 2, 5, 0, 0 }, "MSS claiming 5 bytes with 4 left")]
    [InlineData(new byte[] { 1, 1, 1, 99 }, "unknown kind as the last byte, no room for its length")]
    [InlineData(new byte[] { 8, 10, 0, 0, 0, 0, 0, 0 }, "timestamp running past the end")]
    public void Option_with_length_0_1_or_overrunning_the_header_is_a_bad_option_length(byte[] options, string what) =>
        Assert.True(WireError.BadOptionLength == ParseOptions(options, out _), what);

    [Fact]
    public void Options_parsed_before_a_bad_option_are_kept()
    {
        byte[] options = [2, 4, 0x05, 0xB4, 1, 3, 3, 7, 8, 1, 0, 0];
        Assert.Equal(WireError.BadOptionLength, ParseOptions(options, out TcpOptions parsed));
        Assert.Equal(new OptionFields(1460, 7, false, null, "", FastOpenEncoding.None, "", false, false), Fields(parsed));
    }

    [Fact]
    public void Tcp_header_with_a_bad_option_keeps_its_fixed_fields_and_the_options_before_it()
    {
        TcpHeader header = LinuxSynHeader();
        byte[] segment = new byte[header.Length];
        header.Write(segment);
        segment[TcpSegment.MinHeaderLength + 18] = 0; // the wscale option's length byte (after MSS 4, sackOK 2, TS 10, NOP, kind)

        Assert.Equal(WireError.None, TcpSegment.TryParse(segment, out TcpSegment view));
        Assert.Equal(WireError.BadOptionLength, TcpHeader.Read(view, out TcpHeader parsed));
        Assert.Equal((header.SourcePort, header.DestinationPort, header.SequenceNumber, header.Flags, header.Window),
                     (parsed.SourcePort, parsed.DestinationPort, parsed.SequenceNumber, parsed.Flags, parsed.Window));
        Assert.Equal((ushort)1460, parsed.Options.Mss);
        Assert.True(parsed.Options.SackPermitted);
        Assert.Equal((header.Options.TsVal, 0u), (parsed.Options.TsVal, parsed.Options.TsEcr));
        Assert.False(parsed.Options.HasWindowScale);
    }

    [Theory]
    [InlineData(new byte[] { 2, 3, 5 }, "MSS length 3")]
    [InlineData(new byte[] { 2, 6, 5, 0xB4, 0, 0 }, "MSS length 6")]
    [InlineData(new byte[] { 3, 4, 7, 0 }, "window scale length 4")]
    [InlineData(new byte[] { 4, 3, 0 }, "SACK-permitted length 3")]
    [InlineData(new byte[] { 8, 8, 0, 0, 0, 1, 0, 0 }, "timestamp length 8")]
    [InlineData(new byte[] { 5, 2 }, "SACK with no block")]
    [InlineData(new byte[] { 5, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0 }, "SACK length 12, not 2 + 8n")]
    [InlineData(new byte[] { 34, 3, 0xAA }, "Fast Open with a 1-byte (odd) cookie")]
    [InlineData(new byte[] { 34, 4, 0xAA, 0xBB }, "Fast Open with a 2-byte cookie, shorter than 4")]
    [InlineData(new byte[] { 34, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18 }, "Fast Open with an 18-byte cookie, longer than 16")]
    [InlineData(new byte[] { 254, 5, 0xF9, 0x89, 0xAA }, "experimental Fast Open with a 1-byte cookie")]
    public void Known_option_with_a_wrong_length_is_ignored_and_flagged_malformed(byte[] bad, string what)
    {
        // The bad option, then an MSS that must still be read.
        byte[] options = [.. bad, 2, 4, 0x05, 0xB4];
        Assert.True(WireError.None == ParseOptions(options, out TcpOptions parsed), what);
        Assert.Equal(new OptionFields(1460, null, false, null, "", FastOpenEncoding.None, "", false, true), Fields(parsed));
    }

    [Theory]
    [InlineData(new byte[] { 99, 2 }, "kind 99, no data")]
    [InlineData(new byte[] { 19, 18, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 }, "MD5 signature (kind 19), not ours")]
    [InlineData(new byte[] { 30, 4, 0, 0x81 }, "MPTCP (kind 30)")]
    [InlineData(new byte[] { 254, 4, 0x12, 0x34 }, "experimental option with another magic")]
    [InlineData(new byte[] { 254, 3, 0xF9 }, "experimental option too short for a magic")]
    public void Unknown_option_is_skipped_and_flagged(byte[] unknown, string what)
    {
        byte[] options = [.. unknown, 1, 3, 3, 9];
        Assert.True(WireError.None == ParseOptions(options, out TcpOptions parsed), what);
        Assert.Equal(new OptionFields(null, 9, false, null, "", FastOpenEncoding.None, "", true, false), Fields(parsed));
    }

    [Fact]
    public void Parsing_stops_at_end_of_list_even_before_garbage()
    {
        byte[] options = [2, 4, 0x05, 0xB4, 0, 3, 3, 7, 8, 0, 0xFF, 0xFF];
        Assert.Equal(WireError.None, ParseOptions(options, out TcpOptions parsed));
        Assert.Equal(new OptionFields(1460, null, false, null, "", FastOpenEncoding.None, "", false, false), Fields(parsed));
    }

    [Fact]
    public void Nops_alone_and_an_empty_option_space_parse_to_nothing()
    {
        Assert.Equal(WireError.None, ParseOptions([1, 1, 1, 1], out TcpOptions nops));
        Assert.Equal(WireError.None, ParseOptions([], out TcpOptions none));
        Assert.Equal(Fields(default(TcpOptions)), Fields(nops));
        Assert.Equal(Fields(default(TcpOptions)), Fields(none));
    }

    [Fact]
    public void A_later_option_of_the_same_kind_wins_as_in_linux()
    {
        byte[] options = [2, 4, 0x05, 0xB4, 2, 4, 0x02, 0x18, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 5, 10, 0, 0, 0, 3, 0, 0, 0, 4];
        Assert.Equal(WireError.None, ParseOptions(options, out TcpOptions parsed));
        Assert.Equal((ushort)536, parsed.Mss);
        Assert.Equal([new SackBlock(3, 4)], parsed.Sacks.ToArray());
    }
}
