using TcpLab.Integration.Tests.Support;
using TcpLab.Lab.Namespaces;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Link;
using TcpLab.Stack.Time;

namespace TcpLab.Integration.Tests.Link;

/// <summary>A TAP device against the real kernel, each test in a namespace and subnet of its own.</summary>
public class TapDeviceTests
{
    [NetAdminFact]
    public void The_kernel_answers_an_arp_request_written_to_the_tap()
    {
        var net = new TestNetwork(1);
        using LinkHarness h = LinkHarness.OverTap(net);
        Instant before = h.Loop.Now;

        h.TransmitArpRequestForKernel();

        ReceivedFrame reply = h.Frames.WaitFor("ARP reply from the kernel", f => TestFrames.ParseArp(f.Bytes)?.Operation == TestFrames.ArpReply);
        ArpPacket arp = TestFrames.ParseArp(reply.Bytes)!;
        Assert.Equal(net.StackMac, arp.EthernetDestination);
        Assert.Equal(net.KernelMac, arp.EthernetSource);
        Assert.Equal(net.KernelMac, arp.SenderMac);
        Assert.Equal(net.KernelIp, arp.SenderIp);
        Assert.Equal(net.StackMac, arp.TargetMac);
        Assert.Equal(net.StackIp, arp.TargetIp);

        Assert.True(reply.OnLoopThread);
        Assert.InRange(reply.Timestamp.Nanoseconds, before.Nanoseconds, h.Loop.Now.Nanoseconds);
        Assert.Equal(new LinkInfo(LinkHarness.TapName, 1500), h.Link.Info);
        Assert.Equal(1, h.Link.FramesOut);
        Assert.Equal(TestFrames.ArpFrameLength, h.Link.BytesOut);
        Assert.True(h.Link.FramesIn >= 1 && h.Link.BytesIn >= reply.Bytes.Length);
        Assert.Equal(0, h.Link.TxErrors + h.Link.TxDrops + h.Link.RxErrors);
    }

    [NetAdminFact("ping")]
    public void The_kernel_resolving_the_stack_address_sends_its_arp_request_through_the_tap()
    {
        var net = new TestNetwork(2);
        using LinkHarness h = LinkHarness.OverTap(net);

        // Nobody answers, so ping gives up after its one-second wait; its ARP request is what we want.
        CommandResult ping = h.KernelNamespace.Exec("ping", "-c", "1", "-W", "1", net.StackAddress);

        ReceivedFrame request = h.Frames.WaitFor($"ARP request for {net.StackAddress}", f =>
            TestFrames.ParseArp(f.Bytes) is { Operation: TestFrames.ArpRequest } arp && arp.TargetIp == net.StackIp);
        ArpPacket arp = TestFrames.ParseArp(request.Bytes)!;
        Assert.Equal(TestFrames.BroadcastMac, arp.EthernetDestination);
        Assert.Equal(net.KernelMac, arp.EthernetSource);
        Assert.Equal(net.KernelMac, arp.SenderMac);
        Assert.Equal(net.KernelIp, arp.SenderIp);
        Assert.False(ping.Succeeded); // and, indeed, nobody answered
    }

    [NetAdminFact("ping")]
    public void A_frame_longer_than_a_buffer_is_counted_as_truncated_and_not_delivered()
    {
        var net = new TestNetwork(8);
        using LinkHarness h = LinkHarness.OverTap(net); // buffers sized for the 1500-byte MTU
        h.AddStaticNeighbour();
        h.KernelNamespace.Run("link", "set", LinkHarness.TapName, "mtu", "9000"); // behind the link's back

        h.KernelNamespace.Exec("ping", "-c", "1", "-W", "1", "-s", "3000", net.StackAddress);
        FrameCollector.WaitUntil("the 3042-byte frame to be counted as truncated", () => h.Link.RxTruncated == 1);

        // The link keeps reading: a frame that fits still arrives, and the large one never did.
        h.KernelNamespace.Exec("ping", "-c", "1", "-W", "1", "-s", "100", net.StackAddress);
        h.Frames.WaitFor("ICMP echo request of 142 bytes", f => TestFrames.IpProtocol(f.Bytes) == TestFrames.ProtocolIcmp);
        Assert.DoesNotContain(h.Frames.Seen, f => f.Bytes.Length > 1518);
        Assert.Equal(1, h.Link.RxErrors);
        Assert.True(h.Link.IsReceiving);
    }

    [NetAdminFact]
    public void Disposing_the_link_deletes_the_non_persistent_device()
    {
        var net = new TestNetwork(11);
        using LinkHarness h = LinkHarness.OverTap(net);
        Assert.Contains(LinkHarness.TapName, h.KernelNamespace.Run("-o", "link", "show"));

        h.Link.Dispose();
        h.Link.Dispose();

        Assert.DoesNotContain(LinkHarness.TapName, h.KernelNamespace.Run("-o", "link", "show"));
        Assert.False(h.Link.IsReceiving);
    }

    [NetAdminFact]
    public void Opening_over_a_device_that_is_not_a_tap_fails_with_the_errno_name()
    {
        using NetworkNamespace ns = NetworkNamespace.Create();
        using var loop = new RealTimeEventLoop();
        var options = new TapOptions();
        var pool = new PacketBufferPool(TapDevice.ReceiveBufferSize(options));

        // drivers/net/tun.c tun_set_iff: the name exists and is not a tun/tap device.
        var error = Assert.Throws<ErrnoException>(() => TapDevice.OpenInNamespace(ns.Path, "lo", options, loop, pool));
        Assert.Equal("TUNSETIFF lo: EINVAL (Invalid argument)", error.Message);
    }

    [Fact]
    public void Options_and_pool_are_checked_before_anything_is_opened()
    {
        using var loop = new RealTimeEventLoop();
        var vnet = new TapOptions { VnetHeader = true, Offloads = LinkOffloads.RxOffload };
        Assert.Equal(PacketBuffer.DefaultHeadroom + 12 + 18 + 65535 + 1, TapDevice.ReceiveBufferSize(vnet));

        var small = PacketBufferPool.ForMtu(1500);
        var error = Assert.Throws<ArgumentException>(() => TapDevice.Open("tl0", vnet, loop, small));
        Assert.Contains($"new PacketBufferPool({TapDevice.ReceiveBufferSize(vnet)})", error.Message);

        var offloadsWithoutHeader = new TapOptions { Offloads = LinkOffloads.TxChecksum };
        Assert.Throws<ArgumentException>(() => TapDevice.Open("tl0", offloadsWithoutHeader, loop, small));
        Assert.Throws<ArgumentException>(() => TapDevice.Open("name-longer-than-15", new TapOptions(), loop, small));
    }
}
