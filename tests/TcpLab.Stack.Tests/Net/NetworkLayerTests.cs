using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Net;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Net;

public class NetworkLayerTests
{
    private static readonly MacAddress StackMac = MacAddress.Parse("02:00:00:00:00:02");
    private static readonly MacAddress PeerMac = MacAddress.Parse("02:00:00:00:00:01");
    private static readonly Ipv4Address StackIp = Ipv4Address.Parse("10.0.0.2");
    private static readonly Ipv4Address PeerIp = Ipv4Address.Parse("10.0.0.1");

    private readonly SimulatedEventLoop _loop = new();
    private readonly RecordingLink _link;
    private readonly NetworkStack _stack;

    public NetworkLayerTests()
    {
        _link = new RecordingLink(_loop);
        _stack = new NetworkStack(_loop, "host", random: new DeterministicRandom(1));
        _stack.AddInterface(_link, StackMac, new Ipv4Cidr(StackIp, 24));
    }

    [Fact]
    public void Answers_an_ARP_request_for_its_address_and_learns_the_asker()
    {
        _link.Inject(Frames.Arp(new ArpPacket(ArpOperation.Request, PeerMac, PeerIp, MacAddress.Zero, StackIp), MacAddress.Broadcast));

        var reply = Assert.Single(_link.Sent);
        Assert.Equal(WireError.None, EthernetFrame.TryParse(reply.Bytes, out EthernetFrame eth));
        Assert.Equal(PeerMac, eth.Destination);
        Assert.Equal(EtherType.Arp, eth.EtherType);
        Assert.Equal(WireError.None, ArpPacket.TryParse(eth.Payload, out ArpPacket arp));
        Assert.Equal(new ArpPacket(ArpOperation.Reply, StackMac, StackIp, PeerMac, PeerIp), arp);
        Assert.True(_stack.Interfaces[0].Neighbours.TryGetMac(PeerIp, out MacAddress learned));
        Assert.Equal(PeerMac, learned);
    }

    [Fact]
    public void Ignores_ARP_for_other_addresses_and_creates_no_entry()
    {
        _link.Inject(Frames.Arp(new ArpPacket(ArpOperation.Request, PeerMac, PeerIp, MacAddress.Zero, Ipv4Address.Parse("10.0.0.9")), MacAddress.Broadcast));

        Assert.Empty(_link.Sent);
        Assert.Equal(0, _stack.Interfaces[0].Neighbours.Count);
        Assert.Equal(1, _stack.Counters[DropReason.ArpNotForUs]);
    }

    [Fact]
    public void Answers_a_ping_with_the_same_identifier_sequence_and_data()
    {
        LearnPeer();
        byte[] data = Enumerable.Range(0, 56).Select(i => (byte)i).ToArray();
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, new Ipv4Header(PeerIp, StackIp, IpProtocol.Icmp, 0),
                                 Frames.IcmpEcho(IcmpType.EchoRequest, 0x1234, 7, data)));

        var sent = Assert.Single(_link.Sent);
        Assert.Equal(CauseCode.IcmpEchoReply, sent.Cause.Code);
        EthernetFrame.TryParse(sent.Bytes, out EthernetFrame eth);
        Assert.Equal(PeerMac, eth.Destination);
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip));
        Assert.Equal((StackIp, PeerIp, IpProtocol.Icmp), (ip.Source, ip.Destination, ip.Protocol));
        Assert.Equal(WireError.None, IcmpMessage.TryParse(ip.Payload, out IcmpMessage icmp));
        Assert.Equal((IcmpType.EchoReply, (ushort)0x1234, (ushort)7), (icmp.Type, icmp.Identifier, icmp.SequenceNumber));
        Assert.Equal(data, icmp.Data.ToArray());
        Assert.Equal(1, _stack.Counters[Mib.IcmpInEchos]);
        Assert.Equal(1, _stack.Counters[Mib.IcmpOutEchoReps]);
    }

    [Fact]
    public void An_unresolved_next_hop_gets_three_broadcast_requests_one_second_apart_then_fails_as_host_unreachable()
    {
        var tcp = new RecordingProtocol(_loop);
        _stack.Ip.Register(IpProtocol.Tcp, tcp);
        SendTcpLikeDatagram(PeerIp);

        _loop.RunFor(TimeSpan.FromSeconds(10));

        Assert.Equal([0.0, 1.0, 2.0], _link.Sent.Select(f => f.At.TotalSeconds));
        Assert.All(_link.Sent, f =>
        {
            EthernetFrame.TryParse(f.Bytes, out EthernetFrame eth);
            Assert.True(eth.Destination.IsBroadcast);
            ArpPacket.TryParse(eth.Payload, out ArpPacket arp);
            Assert.Equal((ArpOperation.Request, PeerIp), (arp.Operation, arp.TargetIp));
        });
        Assert.Equal(["ARP request, attempt 1/3", "ARP request, attempt 2/3", "ARP request, attempt 3/3"],
                     _link.Sent.Select(f => f.Cause.ToString()));
        var error = Assert.Single(tcp.Errors);
        Assert.Equal((IcmpType.DestinationUnreachable, (byte)UnreachableCode.Host, Errno.EHOSTUNREACH), (error.Type, error.Code, error.Errno));
        Assert.Equal(3.0, error.At.TotalSeconds);
        Assert.Equal(0, _stack.Interfaces[0].Neighbours.Count);
    }

    [Fact]
    public void Packets_queued_during_resolution_leave_in_order_when_the_reply_arrives()
    {
        SendTcpLikeDatagram(PeerIp, marker: 1);
        SendTcpLikeDatagram(PeerIp, marker: 2);
        _loop.RunFor(TimeSpan.FromMilliseconds(300));
        _link.Inject(Frames.Arp(new ArpPacket(ArpOperation.Reply, PeerMac, PeerIp, StackMac, StackIp), StackMac));

        var ipFrames = _link.Sent.Skip(1).ToList(); // after the one ARP request
        Assert.Equal(2, ipFrames.Count);
        Assert.Equal([1, 2], ipFrames.Select(f => (int)f.Bytes[^1]));
        Assert.All(ipFrames, f => Assert.Equal(0.3, f.At.TotalSeconds, 6));
    }

    [Fact]
    public void A_stale_neighbour_is_used_then_reprobed_by_unicast_after_the_delay_and_dropped_when_silent()
    {
        _link.Inject(Frames.Arp(new ArpPacket(ArpOperation.Request, PeerMac, PeerIp, MacAddress.Zero, StackIp), MacAddress.Broadcast)); // -> STALE
        _link.Sent.Clear();

        SendTcpLikeDatagram(PeerIp);          // used while STALE: goes at once, DELAY starts
        _loop.RunFor(TimeSpan.FromSeconds(20));

        Assert.Equal(0.0, _link.Sent[0].At.TotalSeconds);                    // the datagram itself
        var probes = _link.Sent.Skip(1).ToList();
        Assert.Equal([5.0, 6.0, 7.0], probes.Select(f => f.At.TotalSeconds)); // delay_first_probe_time 5 s, then retrans_time
        Assert.All(probes, f => { EthernetFrame.TryParse(f.Bytes, out EthernetFrame e); Assert.Equal(PeerMac, e.Destination); });
        Assert.Equal(0, _stack.Interfaces[0].Neighbours.Count);               // failed after ucast_solicit probes
    }

    [Fact]
    public void Bad_IPv4_headers_are_counted_under_their_reason_and_never_answered()
    {
        LearnPeer();
        byte[] frame = Frames.Ipv4(StackMac, PeerMac, new Ipv4Header(PeerIp, StackIp, IpProtocol.Icmp, 0),
                                   Frames.IcmpEcho(IcmpType.EchoRequest, 1, 1, new byte[8]));
        frame[EthernetFrame.HeaderLength + 10] ^= 0xFF; // header checksum
        _link.Inject(frame);
        byte[] badVersion = (byte[])frame.Clone();
        badVersion[EthernetFrame.HeaderLength] = 0x65;
        _link.Inject(badVersion);
        byte[] shortFrame = frame[..(EthernetFrame.HeaderLength + 12)];
        _link.Inject(shortFrame);

        Assert.Empty(_link.Sent);
        Assert.Equal(1, _stack.Counters.Rejected(WireProtocol.Ipv4, WireError.BadChecksum));
        Assert.Equal(1, _stack.Counters.Rejected(WireProtocol.Ipv4, WireError.BadVersion));
        Assert.Equal(1, _stack.Counters.Rejected(WireProtocol.Ipv4, WireError.Truncated));
        Assert.Equal(3, _stack.Counters[Mib.IpInHdrErrors]);
        Assert.Equal(1, _stack.Counters[Mib.IpExtInCsumErrors]);
    }

    [Fact]
    public void Datagrams_for_other_addresses_are_dropped_as_address_errors()
    {
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, new Ipv4Header(PeerIp, Ipv4Address.Parse("10.0.0.77"), IpProtocol.Icmp, 0),
                                 Frames.IcmpEcho(IcmpType.EchoRequest, 1, 1, new byte[8])));

        Assert.Empty(_link.Sent);
        Assert.Equal(1, _stack.Counters[Mib.IpInAddrErrors]);
    }

    [Fact]
    public void UDP_is_answered_with_port_unreachable_and_errors_are_rate_limited_per_destination()
    {
        LearnPeer();
        byte[] udp = new byte[16];
        for (int i = 0; i < 10; i++)
            _link.Inject(Frames.Ipv4(StackMac, PeerMac, new Ipv4Header(PeerIp, StackIp, IpProtocol.Udp, 0), udp));

        // icmp_ratelimit 1000 ms with a burst of 6 (XRLIM_BURST_FACTOR).
        Assert.Equal(6, _link.Sent.Count);
        Assert.All(_link.Sent, f => Assert.Equal(CauseCode.IcmpPortUnreachable, f.Cause.Code));

        _loop.RunFor(TimeSpan.FromSeconds(1));
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, new Ipv4Header(PeerIp, StackIp, IpProtocol.Udp, 0), udp));
        Assert.Equal(7, _link.Sent.Count);
    }

    [Fact]
    public void Reassembles_a_fragmented_ping_and_fragments_the_large_reply()
    {
        LearnPeer();
        byte[] data = Enumerable.Range(0, 3000).Select(i => (byte)(i * 7)).ToArray();
        byte[] message = Frames.IcmpEcho(IcmpType.EchoRequest, 9, 1, data);
        // Two fragments, sent last first to exercise out-of-order reassembly.
        var header = new Ipv4Header(PeerIp, StackIp, IpProtocol.Icmp, 0, Identification: 4242, DontFragment: false);
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, header with { FragmentOffset = 1480 }, message.AsSpan(1480)));
        Assert.Empty(_link.Sent);
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, header with { MoreFragments = true }, message.AsSpan(0, 1480)));

        Assert.Equal(1, _stack.Counters[Mib.IpReasmOKs]);
        Assert.Equal(3, _link.Sent.Count); // 3008 bytes of ICMP in 1480-byte fragments
        byte[] reassembled = _link.Sent.SelectMany(f =>
        {
            EthernetFrame.TryParse(f.Bytes, out EthernetFrame eth);
            Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip);
            return ip.Payload.ToArray();
        }).ToArray();
        Assert.Equal(WireError.None, IcmpMessage.TryParse(reassembled, out IcmpMessage reply));
        Assert.Equal(IcmpType.EchoReply, reply.Type);
        Assert.Equal(data, reply.Data.ToArray());
        Assert.Equal(0, _stack.Ip.ReassemblyMemory);
    }

    [Fact]
    public void An_incomplete_datagram_expires_after_ipfrag_time_with_time_exceeded_and_overlaps_kill_the_queue()
    {
        LearnPeer();
        byte[] message = Frames.IcmpEcho(IcmpType.EchoRequest, 9, 1, new byte[3000]);
        var header = new Ipv4Header(PeerIp, StackIp, IpProtocol.Icmp, 0, Identification: 1, DontFragment: false, MoreFragments: true);
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, header, message.AsSpan(0, 1480)));

        _loop.RunFor(TimeSpan.FromSeconds(29.999));
        Assert.Empty(_link.Sent);
        _loop.RunFor(TimeSpan.FromMilliseconds(1));
        var sent = Assert.Single(_link.Sent);
        Assert.Equal(30.0, sent.At.TotalSeconds, 9);
        Assert.Equal(CauseCode.IcmpReassemblyTimeExceeded, sent.Cause.Code);
        Assert.Equal(1, _stack.Counters[Mib.IpReasmTimeout]);

        var second = header with { Identification = 2 };
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, second, message.AsSpan(0, 1480)));
        _link.Inject(Frames.Ipv4(StackMac, PeerMac, second with { FragmentOffset = 8 }, message.AsSpan(8, 1480)));
        Assert.Equal(0, _stack.Ip.ReassemblyMemory); // overlap: queue gone, memory back
        Assert.True(_stack.Counters[Mib.IpReasmFails] >= 2);
    }

    private void LearnPeer()
    {
        _link.Inject(Frames.Arp(new ArpPacket(ArpOperation.Request, PeerMac, PeerIp, MacAddress.Zero, StackIp), MacAddress.Broadcast));
        _link.Sent.Clear();
    }

    /// <summary>Sends a TCP-protocol datagram with a recognisable last byte, as the TCP layer would.</summary>
    private void SendTcpLikeDatagram(Ipv4Address destination, byte marker = 0)
    {
        PacketBuffer message = _stack.Interfaces[0].Pool.Rent();
        Span<byte> payload = message.Append(20);
        payload.Clear();
        payload[^1] = marker;
        _stack.Ip.Send(message, new Ipv4Header(StackIp, destination, IpProtocol.Tcp, 0));
    }

    private sealed class RecordingProtocol(EventLoop loop) : IIpProtocolHandler
    {
        public List<(IcmpType Type, byte Code, Errno Errno, Instant At)> Errors { get; } = new();
        public void Receive(in IpDatagram datagram) { }
        public void ReceiveError(in IcmpError error) => Errors.Add((error.Type, error.Code, error.ToErrno(), loop.Now));
    }
}
