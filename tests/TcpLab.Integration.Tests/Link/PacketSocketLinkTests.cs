using TcpLab.Integration.Tests.Support;
using TcpLab.Lab.Namespaces;
using TcpLab.Stack.Link;

namespace TcpLab.Integration.Tests.Link;

/// <summary>An AF_PACKET link on a veth end, talking to the kernel of another namespace at the far end.</summary>
public class PacketSocketLinkTests
{
    [NetAdminFact]
    public void The_kernel_behind_a_veth_answers_arp_and_the_link_reads_no_outgoing_frames()
    {
        var net = new TestNetwork(3);
        using LinkHarness h = LinkHarness.OverVeth(net);
        Assert.Equal(new LinkInfo(LinkHarness.StackVethName, 1500), h.Link.Info);
        // Membership raises the promiscuity count; the PROMISC flag shows only what a user set
        // (net/core/dev.c dev_get_flags), so read the count.
        Assert.Contains(" promiscuity 1 ", h.StackNamespace!.Run("-d", "link", "show", LinkHarness.StackVethName));

        // Another socket on the same interface sends first. Frames leaving the interface are
        // tapped synchronously on send (dev_queue_xmit_nit), so without PACKET_IGNORE_OUTGOING
        // this one would be queued for our link before the ARP reply below.
        const ulong OtherSenderMac = 0x0200_0077_0303;
        using (PacketSocketLink other = PacketSocketLink.OpenInNamespace(h.StackNamespace.Path, LinkHarness.StackVethName, h.Loop, h.Pool))
        {
            h.Loop.Invoke(() =>
            {
                var frame = h.Pool.Rent();
                TestFrames.WriteEthernet(frame.Append(60), TestFrames.BroadcastMac, OtherSenderMac, TestFrames.EtherTypeExperimental);
                other.Transmit(frame);
            });
            Assert.Equal(1, other.FramesOut);
        }
        h.TransmitArpRequestForKernel();

        // The reply is for our made-up MAC, not the veth's: promiscuous membership lets it in.
        ReceivedFrame reply = h.Frames.WaitFor("ARP reply from the kernel", f => TestFrames.ParseArp(f.Bytes)?.Operation == TestFrames.ArpReply);
        ArpPacket arp = TestFrames.ParseArp(reply.Bytes)!;
        Assert.Equal(net.StackMac, arp.EthernetDestination);
        Assert.Equal(net.KernelMac, arp.SenderMac);
        Assert.Equal(net.KernelIp, arp.SenderIp);
        Assert.Equal(net.StackMac, arp.TargetMac);
        Assert.Equal(net.StackIp, arp.TargetIp);
        Assert.True(reply.OnLoopThread);

        Assert.DoesNotContain(h.Frames.Seen, f => TestFrames.Source(f.Bytes) == OtherSenderMac);
        Assert.DoesNotContain(h.Frames.Seen, f => TestFrames.Source(f.Bytes) == net.StackMac);
        Assert.Equal(1, h.Link.FramesOut);
        Assert.Equal(0, h.Link.TxErrors + h.Link.TxDrops + h.Link.RxErrors);

        // Closing the socket drops the promiscuous membership (af_packet.c packet_flush_mclist).
        h.Link.Dispose();
        Assert.Contains(" promiscuity 0 ", h.StackNamespace.Run("-d", "link", "show", LinkHarness.StackVethName));
    }

    [NetAdminFact("ping")]
    public void The_kernel_arp_request_for_the_stack_address_arrives_through_the_packet_socket()
    {
        var net = new TestNetwork(4);
        using LinkHarness h = LinkHarness.OverVeth(net);

        CommandResult ping = h.KernelNamespace.Exec("ping", "-c", "1", "-W", "1", net.StackAddress);

        ReceivedFrame request = h.Frames.WaitFor($"ARP request for {net.StackAddress}", f =>
            TestFrames.ParseArp(f.Bytes) is { Operation: TestFrames.ArpRequest } arp && arp.TargetIp == net.StackIp);
        ArpPacket arp = TestFrames.ParseArp(request.Bytes)!;
        Assert.Equal(TestFrames.BroadcastMac, arp.EthernetDestination);
        Assert.Equal(net.KernelMac, arp.SenderMac);
        Assert.Equal(net.KernelIp, arp.SenderIp);
        Assert.False(ping.Succeeded);
    }

    [NetAdminFact("ping")]
    public void A_frame_longer_than_a_buffer_is_counted_as_truncated_and_not_delivered()
    {
        var net = new TestNetwork(9);
        using LinkHarness h = LinkHarness.OverVeth(net); // buffers sized for the 1500-byte MTU
        h.AddStaticNeighbour();
        // veth drops frames larger than the receiving end's MTU, so both ends grow.
        h.KernelNamespace.Run("link", "set", LinkHarness.KernelVethName, "mtu", "9000");
        h.StackNamespace!.Run("link", "set", LinkHarness.StackVethName, "mtu", "9000");

        h.KernelNamespace.Exec("ping", "-c", "1", "-W", "1", "-s", "3000", net.StackAddress);
        FrameCollector.WaitUntil("the 3042-byte frame to be counted as truncated", () => h.Link.RxTruncated == 1);

        h.KernelNamespace.Exec("ping", "-c", "1", "-W", "1", "-s", "100", net.StackAddress);
        h.Frames.WaitFor("ICMP echo request of 142 bytes", f => TestFrames.IpProtocol(f.Bytes) == TestFrames.ProtocolIcmp);
        Assert.DoesNotContain(h.Frames.Seen, f => f.Bytes.Length > 1518);
        Assert.Equal(1, h.Link.RxErrors);
        Assert.True(h.Link.IsReceiving);
    }
}
