using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;

namespace TcpLab.Stack.Tests.Support;

/// <summary>What 100 ms of a bulk transfer in its steady state cost and sent.</summary>
public sealed record SteadyBulkTransfer(long Allocated, long Segments, long Superframes, long BytesRead)
{
    /// <summary>
    /// Runs a bulk transfer from the client to the server of <paramref name="net"/> until its
    /// steady state, then measures 100 ms of simulated time on this thread.
    /// </summary>
    public static SteadyBulkTransfer Measure(TwoHosts net)
    {
        var (client, server) = Connected.Open(net);
        var sink = new BulkSink(server);
        new BulkSource(client, new byte[1 << 20], long.MaxValue);
        net.Run(TimeSpan.FromMilliseconds(300));   // slow start, buffer growth, pools filled
        // CUBIC leaves slow start early (HyStart) and grows cwnd on: warm up until cwnd exceeds what
        // the send buffer can keep in flight, so the rings sized by the flight have stopped growing.
        for (int i = 0; i < 30 && (long)client.CongestionWindow * client.SendMss <= client.SendBufferSize; i++)
            net.Run(TimeSpan.FromMilliseconds(100));

        long segments = client.SegmentsOut, superframes = client.SuperframesOut;
        // The least of three windows: an allocation per segment shows in every window, while the
        // runtime may allocate once on this thread when the test host is busy (seen once in a
        // full `make test`: 5992 B in one window; the simulation is deterministic and the same
        // transfer allocated nothing in every other run).
        long allocated = long.MaxValue;
        for (int window = 0; window < 3; window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            net.Run(TimeSpan.FromMilliseconds(100));
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return new(allocated, client.SegmentsOut - segments, client.SuperframesOut - superframes, sink.BytesRead);
    }
}
