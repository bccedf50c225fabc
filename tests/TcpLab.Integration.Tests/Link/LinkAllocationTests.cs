using System.Net;
using System.Net.Sockets;
using TcpLab.Integration.Tests.Support;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;

namespace TcpLab.Integration.Tests.Link;

/// <summary>
/// Steady-state frame handling allocates nothing on the loop thread: not in the link, the loop's
/// epoll wait and dispatch, the pool, nor the virtio-net header code. Measured with the loop
/// thread's own allocation counter, so other threads' allocations do not count.
/// </summary>
public class LinkAllocationTests
{
    private const int Warmup = 50;
    private const int Measured = 200;

    [NetAdminFact]
    public void Receiving_and_transmitting_in_steady_state_allocate_nothing()
    {
        var net = new TestNetwork(10);
        var probe = new AllocationProbe();
        using LinkHarness h = LinkHarness.OverTap(net, new TapOptions { VnetHeader = true, Offloads = LinkOffloads.RxOffload }, probe);
        h.AddStaticNeighbour();
        using Socket sender = KernelUdpSocket.BindInside(h.KernelNamespace.Path, net.KernelAddress, 40010);
        var destination = new IPEndPoint(IPAddress.Parse(net.StackAddress), 9);
        byte[] payload = new byte[100];

        // Paced in small bursts, so the TAP's queue never overflows and every datagram arrives.
        for (int sent = 0; !probe.Done.IsSet && sent < 10 * (Warmup + Measured);)
        {
            for (int i = 0; i < 10; i++, sent++) sender.SendTo(payload, destination);
            int expected = sent;
            SpinWait.SpinUntil(() => probe.UdpFrames >= expected || probe.Done.IsSet, FrameCollector.DefaultTimeout);
        }
        Assert.True(probe.Done.IsSet, $"only {probe.UdpFrames} of {Warmup + Measured} datagrams arrived");
        Assert.Equal(0, probe.AllocatedBytes);

        long transmitAllocated = -1;
        h.Loop.Invoke(() =>
        {
            for (int i = 0; i < Warmup; i++) TransmitExperimentalFrame(h);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Measured; i++) TransmitExperimentalFrame(h);
            transmitAllocated = GC.GetAllocatedBytesForCurrentThread() - before;
        });
        Assert.Equal(0, transmitAllocated);
        Assert.Equal(Warmup + Measured, h.Link.FramesOut);
    }

    /// <summary>A broadcast frame of a local experimental EtherType: the kernel takes it and answers nothing.</summary>
    private static void TransmitExperimentalFrame(LinkHarness h)
    {
        PacketBuffer frame = h.Pool.Rent();
        Span<byte> bytes = frame.Append(60);
        bytes.Clear();
        TestFrames.WriteEthernet(bytes, TestFrames.BroadcastMac, h.Network.StackMac, TestFrames.EtherTypeExperimental);
        h.Link.Transmit(frame);
    }

    /// <summary>Counts UDP frames and measures the loop thread's allocations between the warm-up and the end.</summary>
    private sealed class AllocationProbe : IFrameHandler
    {
        private int _udpFrames;
        private long _allocatedAtWarmup;

        public ManualResetEventSlim Done { get; } = new();
        public int UdpFrames => Volatile.Read(ref _udpFrames);
        public long AllocatedBytes { get; private set; } = -1;

        public void OnFrame(PacketBuffer frame)
        {
            bool udp = TestFrames.IpProtocol(frame.Span) == TestFrames.ProtocolUdp;
            frame.Release();
            if (!udp) return;
            int count = Interlocked.Increment(ref _udpFrames);
            if (count == Warmup) _allocatedAtWarmup = GC.GetAllocatedBytesForCurrentThread();
            if (count != Warmup + Measured) return;
            AllocatedBytes = GC.GetAllocatedBytesForCurrentThread() - _allocatedAtWarmup;
            Done.Set();
        }
    }
}
