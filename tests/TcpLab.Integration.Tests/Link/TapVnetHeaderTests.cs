using System.Net;
using System.Net.Sockets;
using System.Text;
using TcpLab.Integration.Tests.Support;
using TcpLab.Stack.Link;

namespace TcpLab.Integration.Tests.Link;

/// <summary>A TAP opened with IFF_VNET_HDR: the 12-byte virtio-net header in both directions.</summary>
public class TapVnetHeaderTests
{
    private static readonly TapOptions Offloading = new()
    {
        VnetHeader = true,
        Offloads = LinkOffloads.TxChecksum | LinkOffloads.TxTcpSegmentation | LinkOffloads.RxOffload,
    };

    [NetAdminFact]
    public void Arp_still_works_and_frames_arrive_starting_at_their_ethernet_header()
    {
        var net = new TestNetwork(5);
        using LinkHarness h = LinkHarness.OverTap(net, Offloading);
        Assert.Equal(Offloading.Offloads, h.Link.Info.Offloads);

        h.TransmitArpRequestForKernel();

        ReceivedFrame reply = h.Frames.WaitFor("ARP reply from the kernel", f => TestFrames.ParseArp(f.Bytes)?.Operation == TestFrames.ArpReply);
        Assert.Equal(TestFrames.ArpFrameLength, reply.Bytes.Length); // no header bytes left in front
        Assert.Equal(net.StackMac, TestFrames.Destination(reply.Bytes));
        Assert.Equal(net.KernelIp, TestFrames.ParseArp(reply.Bytes)!.SenderIp);
        Assert.False(reply.Offload.NeedsChecksum);
        Assert.Equal(Stack.Buffers.GsoKind.None, reply.Offload.Gso);
        // Header bytes are counted as neither frames nor bytes.
        Assert.Equal(TestFrames.ArpFrameLength, h.Link.BytesOut);
        Assert.Equal(0, h.Link.RxErrors + h.Link.TxErrors);
    }

    [NetAdminFact]
    public void A_kernel_udp_datagram_arrives_with_its_partial_checksum_described_in_Offload()
    {
        var net = new TestNetwork(6);
        using LinkHarness h = LinkHarness.OverTap(net, Offloading);
        h.AddStaticNeighbour();
        using Socket sender = KernelUdpSocket.BindInside(h.KernelNamespace.Path, net.KernelAddress, 40006);

        // With TUN_F_CSUM the TAP advertises NETIF_F_HW_CSUM, so the kernel leaves the UDP
        // checksum for "the hardware" (us) to finish: CHECKSUM_PARTIAL becomes NEEDS_CSUM.
        sender.SendTo(Encoding.ASCII.GetBytes("partial"), new IPEndPoint(IPAddress.Parse(net.StackAddress), 9));

        ReceivedFrame datagram = h.Frames.WaitFor("UDP datagram to port 9", f =>
            TestFrames.IpProtocol(f.Bytes) == TestFrames.ProtocolUdp && TestFrames.UdpDestinationPort(f.Bytes) == 9);
        Assert.Equal(TestFrames.EtherTypeIpv4, TestFrames.EtherType(datagram.Bytes));
        Assert.Equal(net.StackMac, TestFrames.Destination(datagram.Bytes));
        Assert.True(datagram.Offload.NeedsChecksum);
        Assert.Equal(TestFrames.EthernetHeaderLength + TestFrames.Ipv4HeaderLength, datagram.Offload.ChecksumStart);
        Assert.Equal(TestFrames.UdpChecksumOffset, datagram.Offload.ChecksumOffset);
        Assert.False(TestFrames.UdpChecksumVerifies(datagram.Bytes)); // it really is unfinished
    }

    [NetAdminFact]
    public void A_frame_sent_with_NeedsChecksum_is_accepted_where_the_same_frame_without_it_is_dropped()
    {
        var net = new TestNetwork(7);
        using LinkHarness h = LinkHarness.OverTap(net, Offloading);
        using Socket receiver = KernelUdpSocket.BindInside(h.KernelNamespace.Path, net.KernelAddress, 40007);
        long checksumErrorsBefore = UdpInCsumErrors(h);

        // Both frames carry only the pseudo-header sum in the checksum field. Without
        // NEEDS_CSUM that is simply a wrong checksum and the kernel must drop the datagram;
        // with it, the virtio-net header tells the kernel where the checksum is to be finished.
        SendPartial(h, net, "no offload flag", needsChecksum: false);
        SendPartial(h, net, "needs checksum", needsChecksum: true);

        byte[] buffer = new byte[64];
        int received = receiver.Receive(buffer);
        Assert.Equal("needs checksum", Encoding.ASCII.GetString(buffer, 0, received));
        Assert.Equal(checksumErrorsBefore + 1, UdpInCsumErrors(h));
        Assert.Equal(2, h.Link.FramesOut);
        Assert.Equal(0, h.Link.TxErrors);
    }

    private static void SendPartial(LinkHarness h, TestNetwork net, string payload, bool needsChecksum) => h.Transmit(frame =>
    {
        Span<byte> space = frame.Append(128);
        int length = TestFrames.WriteUdpWithPartialChecksum(space, net, 50000, 40007, Encoding.ASCII.GetBytes(payload));
        Assert.False(TestFrames.UdpChecksumVerifies(space[..length])); // the partial sum is not a valid checksum
        frame.SetLength(length);
        frame.Offload = new Stack.Buffers.OffloadInfo
        {
            NeedsChecksum = needsChecksum,
            ChecksumStart = TestFrames.EthernetHeaderLength + TestFrames.Ipv4HeaderLength,
            ChecksumOffset = TestFrames.UdpChecksumOffset,
        };
    });

    /// <summary>Udp InCsumErrors of the namespace, from /proc/net/snmp as seen inside it.</summary>
    private static long UdpInCsumErrors(LinkHarness h)
    {
        string[] udpLines = h.KernelNamespace.Exec("cat", "/proc/net/snmp").StandardOutput
            .Split('\n').Where(line => line.StartsWith("Udp: ", StringComparison.Ordinal)).ToArray();
        int column = Array.IndexOf(udpLines[0].Split(' '), "InCsumErrors");
        return long.Parse(udpLines[1].Split(' ')[column]);
    }
}
