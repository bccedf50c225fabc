using TcpLab.Stack.Wire;
using static TcpLab.Stack.Tests.Wire.LinuxCaptures;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>
/// Frames the Linux 6.18 kernel sent between two namespaces (Wire/Data, made by
/// tools/kat/capture-linux-frames.sh): our parsers must read exactly what tcpdump printed,
/// accept the kernel's checksums, and our writers must reproduce the kernel's bytes.
/// </summary>
public class LinuxKnownAnswerTests
{
    public static TheoryData<string, int> AllFrames => Where(_ => true);
    public static TheoryData<string, int> Ipv4Frames => Where(IsIpv4);
    public static TheoryData<string, int> TcpFrames => Where(IsTcp);
    public static TheoryData<string, int> IcmpFrames => Where(IsIcmp);
    public static TheoryData<string, int> ArpFrames => Where(IsArp);

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    [Fact]
    public void Every_capture_is_present_and_holds_frames()
    {
        Assert.All(Names, name => Assert.NotEmpty(Load(name)));
        Assert.All(All, f => Assert.False(string.IsNullOrEmpty(f.Tcpdump), $"{f} has no tcpdump text"));
    }

    [Theory]
    [MemberData(nameof(AllFrames))]
    public void Ethernet_header_is_what_tcpdump_printed_and_rewrites_to_the_same_bytes(string capture, int number)
    {
        CapturedFrame f = Frame(capture, number);
        EthernetText expected = Ethernet(f);

        Assert.Equal(WireError.None, EthernetFrame.TryParse(f.Bytes, out EthernetFrame eth));
        Assert.Equal(expected.Source, eth.Source.ToString());
        Assert.Equal(expected.Destination, eth.Destination.ToString());
        Assert.Equal(expected.EtherType, (ushort)eth.EtherType);
        Assert.Equal(expected.Length, f.Bytes.Length);

        var rewritten = new byte[EthernetFrame.HeaderLength];
        EthernetFrame.WriteHeader(rewritten, eth.Destination, eth.Source, eth.EtherType);
        Assert.Equal(Hex(f.Bytes.AsSpan(0, EthernetFrame.HeaderLength)), Hex(rewritten));
    }

    [Theory]
    [MemberData(nameof(Ipv4Frames))]
    public void Ipv4_header_is_what_tcpdump_printed_with_a_valid_checksum_and_rewrites_to_the_same_bytes(string capture, int number)
    {
        CapturedFrame f = Frame(capture, number);
        Ipv4Text expected = Ipv4(f);
        ReadOnlySpan<byte> datagram = f.Bytes.AsSpan(EthernetFrame.HeaderLength);

        Assert.Equal(WireError.None, Ipv4Packet.TryParse(datagram, out Ipv4Packet ip, verifyChecksum: true));
        Assert.Equal(4, ip.Version);
        Assert.Equal(Ipv4Packet.MinHeaderLength, ip.HeaderLength);
        Assert.Equal(expected.Tos, ip.TypeOfService);
        Assert.Equal(expected.Ttl, ip.Ttl);
        Assert.Equal(expected.Id, ip.Identification);
        Assert.Equal(expected.FragmentOffset, ip.FragmentOffset);
        Assert.Equal(expected.Flags.Contains("DF", StringComparison.Ordinal), ip.DontFragment);
        Assert.Equal(expected.Flags.Contains('+', StringComparison.Ordinal), ip.MoreFragments);
        Assert.Equal(expected.Protocol, (byte)ip.Protocol);
        Assert.Equal(expected.Length, ip.TotalLength);
        Assert.Equal(expected.Source, ip.Source.ToString());
        Assert.Equal(expected.Destination, ip.Destination.ToString());
        Assert.Equal(0xFFFF, WireFrames.ReferenceSum(ip.Header)); // the kernel's checksum, by the RFC 1071 reference

        var rewritten = new byte[Ipv4Header.Length];
        Ipv4Header.From(ip).Write(rewritten);
        Assert.Equal(Hex(ip.Header), Hex(rewritten));
    }

    [Theory]
    [MemberData(nameof(TcpFrames))]
    public void Tcp_segment_is_what_tcpdump_printed_and_rewrites_to_the_kernels_bytes(string capture, int number)
    {
        CapturedFrame f = Frame(capture, number);
        TcpText expected = LinuxCaptures.Tcp(f);
        Assert.True(expected.ChecksumCorrect, $"{f}: tcpdump found the kernel's checksum wrong; recapture with checksum offload off");

        Assert.Equal(WireError.None, Ipv4Packet.TryParse(f.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet ip));
        Assert.Equal(WireError.None, TcpSegment.TryParse(ip.Payload, out TcpSegment segment));
        Assert.Equal(expected.Checksum, segment.Checksum);
        Assert.True(segment.HasValidChecksum(ip.Source, ip.Destination), $"{f}: pseudo-header checksum does not verify");
        Assert.Equal(WireError.None, TcpHeader.Read(segment, out TcpHeader header));

        Assert.Equal(expected.SourcePort, header.SourcePort);
        Assert.Equal(expected.DestinationPort, header.DestinationPort);
        Assert.Equal(expected.Flags, TcpHeader.FormatFlags(header.Flags));
        Assert.Equal(expected.Seq, header.SequenceNumber);
        Assert.Equal(expected.Ack is not null, (header.Flags & TcpFlags.Ack) != 0); // tcpdump prints ack only with ACK set
        if (expected.Ack is uint ack) Assert.Equal(ack, header.AcknowledgmentNumber);
        Assert.Equal(expected.Window, header.Window);
        Assert.Equal(expected.PayloadLength, segment.Payload.Length);

        TcpOptions options = header.Options;
        Assert.False(options.SawUnknown, $"{f}: unknown option");
        Assert.False(options.SawMalformed, $"{f}: malformed option");
        Assert.Equal(OptionsWithoutNops(expected.Options ?? ""), options.ToString());
        Assert.Equal(Timestamp(expected), options.HasTimestamp ? (options.TsVal, options.TsEcr) : null);
        Assert.Equal(SackBlocks(expected), options.Sacks.ToArray().Select(b => (b.Left, b.Right)).ToArray());
        Assert.Equal(FastOpenCookie(expected), options.FastOpen == FastOpenEncoding.None ? null : Hex(options.Cookie));

        // Write the parsed header back: same option bytes (our order is tcp_options_write's),
        // then with the payload and our checksum, the very segment the kernel sent.
        var rewritten = new byte[segment.Bytes.Length];
        int headerLength = header.Write(rewritten);
        Assert.Equal(segment.HeaderLength, headerLength);
        Assert.Equal(Hex(segment.OptionBytes), Hex(rewritten.AsSpan(TcpSegment.MinHeaderLength, headerLength - TcpSegment.MinHeaderLength)));
        segment.Payload.CopyTo(rewritten.AsSpan(headerLength));
        TcpHeader.WriteChecksum(rewritten, ip.Source, ip.Destination);
        Assert.Equal(Hex(segment.Bytes), Hex(rewritten));
    }

    [Theory]
    [MemberData(nameof(IcmpFrames))]
    public void Icmp_message_checksum_verifies_and_rewrites_to_the_kernels_bytes(string capture, int number)
    {
        CapturedFrame f = Frame(capture, number);
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(f.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet ip));
        Assert.Equal(WireError.None, IcmpMessage.TryParse(ip.Payload, out IcmpMessage icmp, verifyChecksum: true));

        var rewritten = icmp.Bytes.ToArray();
        rewritten[2] = rewritten[3] = 0xAA; // WriteHeader must overwrite the checksum, not add to it
        IcmpMessage.WriteHeader(rewritten, icmp.Type, icmp.Code, icmp.Identifier, icmp.SequenceNumber);
        Assert.Equal(Hex(icmp.Bytes), Hex(rewritten));
    }

    [Theory]
    [MemberData(nameof(ArpFrames))]
    public void Arp_packet_is_what_tcpdump_printed_and_rewrites_to_the_same_bytes(string capture, int number)
    {
        CapturedFrame f = Frame(capture, number);
        Assert.Equal(WireError.None, EthernetFrame.TryParse(f.Bytes, out EthernetFrame eth));
        Assert.Equal(WireError.None, ArpPacket.TryParse(eth.Payload, out ArpPacket arp));

        // "Request who-has 10.77.250.2 tell 10.77.250.1" / "Reply 10.77.250.2 is-at 02:00:00:00:fa:02"
        string expected = arp.Operation == ArpOperation.Request
            ? $"Request who-has {arp.TargetIp} tell {arp.SenderIp}, length 28"
            : $"Reply {arp.SenderIp} is-at {arp.SenderMac}, length 28";
        Assert.Contains(expected, f.Tcpdump, StringComparison.Ordinal);

        var rewritten = new byte[ArpPacket.Length];
        arp.Write(rewritten);
        Assert.Equal(Hex(eth.Payload[..ArpPacket.Length]), Hex(rewritten));
    }

    // ---- The frames the brief names, field by field ----

    private static TcpHeader ReadTcp(CapturedFrame f, out TcpText text, out byte[] payload)
    {
        text = LinuxCaptures.Tcp(f);
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(f.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet ip));
        Assert.Equal(WireError.None, TcpSegment.TryParse(ip.Payload, out TcpSegment segment));
        Assert.Equal(WireError.None, TcpHeader.Read(segment, out TcpHeader header));
        payload = segment.Payload.ToArray();
        return header;
    }

    [Fact]
    public void Linux_syn_offers_mss_1460_sackOK_timestamps_and_window_scale()
    {
        TcpHeader syn = ReadTcp(Frame("tcp-hello", "client SYN"), out TcpText text, out _);

        Assert.Equal(TcpFlags.Syn, syn.Flags);
        Assert.Equal((ushort)40100, syn.SourcePort);
        Assert.Equal((ushort)5000, syn.DestinationPort);
        Assert.Equal((ushort)64240, syn.Window); // 44 * 1460, Linux's initial receive window
        Assert.True(syn.Options.HasMss);
        Assert.Equal((ushort)1460, syn.Options.Mss); // 1500 MTU - 40
        Assert.True(syn.Options.SackPermitted);
        Assert.True(syn.Options.HasTimestamp);
        Assert.Equal(Timestamp(text)!.Value.Val, syn.Options.TsVal);
        Assert.Equal(0u, syn.Options.TsEcr);
        Assert.True(syn.Options.HasWindowScale);
        // 6.18's default tcp_rmem[2] is 32 MiB: ilog2(32 MiB) - 15 = 10 (older kernels, 6 MiB: 7).
        Assert.Equal((byte)10, syn.Options.WindowScale);
        Assert.Equal(20, syn.Options.EncodedLength);
    }

    [Fact]
    public void Linux_syn_ack_acknowledges_the_syn_and_data_segment_carries_helloworld()
    {
        TcpHeader syn = ReadTcp(Frame("tcp-hello", "client SYN"), out _, out _);
        TcpHeader synAck = ReadTcp(Frame("tcp-hello", "server SYN-ACK"), out _, out _);
        TcpHeader data = ReadTcp(Frame("tcp-hello", "client PSH-ACK, 10 bytes payload"), out TcpText dataText, out byte[] payload);

        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(syn.SequenceNumber + 1, synAck.AcknowledgmentNumber);
        Assert.Equal((ushort)65160, synAck.Window);
        Assert.Equal((ushort)1460, synAck.Options.Mss);
        Assert.Equal(syn.Options.TsVal, synAck.Options.TsEcr);

        Assert.Equal(TcpFlags.Psh | TcpFlags.Ack, data.Flags);
        Assert.Equal(syn.SequenceNumber + 1, data.SequenceNumber);
        Assert.Equal("helloworld", System.Text.Encoding.ASCII.GetString(payload));
        Assert.Contains($"seq {data.SequenceNumber}:{data.SequenceNumber + 10}", Frame("tcp-hello", "client PSH-ACK, 10 bytes payload").Tcpdump, StringComparison.Ordinal);
        Assert.Equal(Timestamp(dataText), (data.Options.TsVal, data.Options.TsEcr));
    }

    [Fact]
    public void Connect_to_a_closed_port_is_answered_by_rst_ack_with_seq_0_and_no_options()
    {
        TcpHeader syn = ReadTcp(Frame("tcp-rst", "client SYN"), out _, out _);
        TcpHeader rst = ReadTcp(Frame("tcp-rst", "server RST-ACK"), out TcpText text, out byte[] payload);

        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
        Assert.Equal("R.", text.Flags);
        Assert.Equal(0u, rst.SequenceNumber);
        Assert.Equal(syn.SequenceNumber + 1, rst.AcknowledgmentNumber);
        Assert.Equal((ushort)0, rst.Window);
        Assert.Equal(TcpSegment.MinHeaderLength, rst.Length);
        Assert.Empty(payload);
    }

    [Fact]
    public void Fast_open_cookie_request_cookie_and_syn_with_cookie_and_data()
    {
        TcpHeader request = ReadTcp(Frame("tcp-fastopen", "client SYN, TFO cookie request"), out _, out _);
        TcpHeader grant = ReadTcp(Frame("tcp-fastopen", "server SYN-ACK, TFO cookie (8 bytes)"), out TcpText grantText, out _);
        TcpHeader synWithData = ReadTcp(Frame("tcp-fastopen", "client SYN, 10 bytes payload, TFO cookie (8 bytes)"), out _, out byte[] payload);

        Assert.Equal(FastOpenEncoding.Rfc7413, request.Options.FastOpen);
        Assert.Equal(0, request.Options.FastOpenCookieLength);

        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, grant.Flags);
        Assert.Equal(FastOpenEncoding.Rfc7413, grant.Options.FastOpen);
        Assert.Equal(8, grant.Options.FastOpenCookieLength); // Linux's server cookie: 64 bits of SipHash
        Assert.Equal(FastOpenCookie(grantText), Hex(grant.Options.Cookie));

        Assert.Equal(TcpFlags.Syn, synWithData.Flags);
        Assert.Equal(Hex(grant.Options.Cookie), Hex(synWithData.Options.Cookie));
        Assert.Equal("helloworld", System.Text.Encoding.ASCII.GetString(payload));
        Assert.Equal(32, synWithData.Options.EncodedLength); // mss 4 + sackOK/TS 12 + wscale 4 + tfo 10 padded to 12
    }

    [Theory]
    [InlineData("tcp-sack", 3)]      // timestamps take 12 of the 40 bytes: 4 + 3 * 8 = 28 left
    [InlineData("tcp-sack-nots", 4)] // without them all 4 blocks fit (36 bytes)
    public void Sack_blocks_are_read_as_tcpdump_printed_them_up_to_the_most_that_fit(string capture, int mostBlocks)
    {
        int most = 0;
        foreach (CapturedFrame f in Load(capture).Where(f => f.Tcpdump.Contains(",sack ", StringComparison.Ordinal)))
        {
            TcpHeader ack = ReadTcp(f, out TcpText text, out _);
            (uint, uint)[] expected = SackBlocks(text);
            Assert.NotEmpty(expected);
            Assert.Equal(expected, ack.Options.Sacks.ToArray().Select(b => (b.Left, b.Right)).ToArray());
            Assert.Contains($"sack {expected.Length} ", text.Options!, StringComparison.Ordinal);
            most = Math.Max(most, ack.Options.SackBlockCount);
        }
        Assert.Equal(mostBlocks, most);
    }

    [Fact]
    public void Syn_without_timestamps_puts_sackOK_after_two_nops()
    {
        CapturedFrame f = Frame("tcp-sack-nots", "server SYN-ACK");
        TcpHeader synAck = ReadTcp(f, out TcpText text, out _);

        Assert.Equal("mss 1460,nop,nop,sackOK,nop,wscale 10", text.Options);
        Assert.False(synAck.Options.HasTimestamp);
        Assert.True(synAck.Options.SackPermitted);
        Assert.Equal(12, synAck.Options.EncodedLength);
    }

    [Fact]
    public void Ecn_setup_flags_print_as_tcpdump_does_and_data_is_marked_ect0()
    {
        TcpHeader syn = ReadTcp(Frame("tcp-ecn", "client SYN-ECE-CWR"), out TcpText synText, out _);
        TcpHeader synAck = ReadTcp(Frame("tcp-ecn", "server SYN-ACK-ECE"), out TcpText synAckText, out _);

        Assert.Equal(TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, syn.Flags);
        Assert.Equal("SEW", synText.Flags);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Ece, synAck.Flags);
        Assert.Equal("S.E", synAckText.Flags);

        CapturedFrame data = Frame("tcp-ecn", "client PSH-ACK, 10 bytes payload, ECN codepoint 2");
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(data.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet ip));
        Assert.Equal(0x02, ip.TypeOfService & 0x03); // ECT(0), RFC 3168
        Assert.Contains("tos 0x2,ECT(0)", data.Tcpdump, StringComparison.Ordinal);
    }

    [Fact]
    public void Arp_request_is_broadcast_and_the_reply_carries_the_servers_mac()
    {
        CapturedFrame requestFrame = Frame("arp-icmp", "ARP request");
        Assert.Equal(WireError.None, EthernetFrame.TryParse(requestFrame.Bytes, out EthernetFrame eth));
        Assert.True(eth.Destination.IsBroadcast);
        Assert.Equal(EtherType.Arp, eth.EtherType);
        Assert.Equal(WireError.None, ArpPacket.TryParse(eth.Payload, out ArpPacket request));
        Assert.Equal(new ArpPacket(ArpOperation.Request, WireFrames.ClientMac, WireFrames.ClientIp, MacAddress.Zero, WireFrames.ServerIp), request);

        Assert.Equal(WireError.None, EthernetFrame.TryParse(Frame("arp-icmp", "ARP reply").Bytes, out EthernetFrame replyEth));
        Assert.Equal(WireError.None, ArpPacket.TryParse(replyEth.Payload, out ArpPacket reply));
        Assert.Equal(new ArpPacket(ArpOperation.Reply, WireFrames.ServerMac, WireFrames.ServerIp, WireFrames.ClientMac, WireFrames.ClientIp), reply);
    }

    [Fact]
    public void Ping_echo_request_and_reply_carry_the_id_seq_and_data_tcpdump_printed()
    {
        CapturedFrame requestFrame = Frame("arp-icmp", "client ICMP echo request code 0"), replyFrame = Frame("arp-icmp", "server ICMP echo reply code 0");
        IcmpEchoText requestText = IcmpEcho(requestFrame), replyText = IcmpEcho(replyFrame);

        Assert.Equal(WireError.None, Ipv4Packet.TryParse(requestFrame.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet requestIp));
        Assert.Equal(WireError.None, IcmpMessage.TryParse(requestIp.Payload, out IcmpMessage request));
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(replyFrame.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet replyIp));
        Assert.Equal(WireError.None, IcmpMessage.TryParse(replyIp.Payload, out IcmpMessage reply));

        Assert.Equal(("request", IcmpType.EchoRequest), (requestText.Kind, request.Type));
        Assert.Equal(("reply", IcmpType.EchoReply), (replyText.Kind, reply.Type));
        Assert.Equal((requestText.Id, requestText.Seq, requestText.Length), (request.Identifier, request.SequenceNumber, request.Bytes.Length));
        Assert.Equal((replyText.Id, replyText.Seq), (reply.Identifier, reply.SequenceNumber));
        Assert.Equal(56, request.Data.Length); // ping's default: 8-byte timeval + 48 pattern bytes
        Assert.Equal(Hex(request.Data), Hex(reply.Data));
    }

    [Fact]
    public void Port_unreachable_quotes_the_whole_offending_datagram()
    {
        CapturedFrame udpFrame = Frame("arp-icmp", "client UDP datagram, 10 bytes payload");
        CapturedFrame errorFrame = Frame("arp-icmp", "server ICMP destination unreachable code 3, quoting the offending datagram");
        Assert.Contains("udp port 5999 unreachable", errorFrame.Tcpdump, StringComparison.Ordinal);

        Assert.Equal(WireError.None, Ipv4Packet.TryParse(errorFrame.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet ip));
        Assert.Equal(0xC0, ip.TypeOfService); // Linux sends ICMP errors as internetwork control
        Assert.Equal(WireError.None, IcmpMessage.TryParse(ip.Payload, out IcmpMessage error));
        Assert.Equal(IcmpType.DestinationUnreachable, error.Type);
        Assert.Equal((byte)UnreachableCode.Port, error.Code);
        Assert.Equal(0, error.NextHopMtu);

        // RFC 792 asks for the header and 8 bytes; Linux quotes as much as fits in 576 bytes
        // (RFC 1812 4.3.2.3), here the whole 38-byte datagram, which parses with its checksum.
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(udpFrame.Bytes.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet sent));
        Assert.Equal(Hex(sent.Bytes), Hex(error.Data));
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(error.Data, out Ipv4Packet quoted));
        Assert.Equal((IpProtocol.Udp, WireFrames.ClientIp, WireFrames.ServerIp), (quoted.Protocol, quoted.Source, quoted.Destination));
    }
}
