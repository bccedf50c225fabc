using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// The receive window (tcp_select_window with window scaling, scaling_ratio, tcp_grow_window),
/// receive and send buffer autotuning, silly window avoidance on both sides and window updates,
/// in simulated time. Expected values are derived in the comments from Linux's formulas.
/// </summary>
public class WindowTests
{
    private const int Mss = 1448;                       // 1500 - 20 - 20 - 12 (timestamps)
    private const int FrameTruesize = 2176;             // tun_build_skb for a 1514-byte frame
    private const int MeasuredRatio = Mss * 256 / FrameTruesize;   // 170

    [Fact]
    public void A_full_sized_segment_sets_the_scaling_ratio_and_the_window_clamp_follows()
    {
        var net = new TwoHosts();
        var (client, server) = Connected.Open(net);
        // Before any data: ratio 1/2 of tcp_rmem[1] = 65536, less one segment kept for the
        // application (tcp_init_buffer_space with tcp_app_win): 64088.
        Assert.Equal(128, server.ScalingRatio);
        Assert.Equal(65536 - Mss, server.WindowClamp);
        Assert.Equal(65536 - Mss, server.ReceiveSlowStartThreshold);

        client.Write(new byte[Mss]);
        net.Run(TimeSpan.FromMilliseconds(1));

        Assert.Equal(FrameTruesize, ReceiveMemory.FrameTruesize(14 + 20 + 32 + Mss));
        Assert.Equal(170, MeasuredRatio);
        Assert.Equal(MeasuredRatio, server.ScalingRatio);
        Assert.Equal(131072 * MeasuredRatio / 256, server.WindowClamp);   // 87040
        // tcp_grow_window: +2 × advmss. The ACK offers it rounded up to the scale (1024).
        int ssthresh = 65536 - Mss + 2 * Mss;
        Assert.Equal(ssthresh, server.ReceiveSlowStartThreshold);
        LoggedSegment ack = net.Log.From(TwoHosts.ServerIp).Last();
        Assert.Equal((ssthresh + 1023) / 1024, ack.Header.Window);
    }

    [Fact]
    public void The_window_grows_by_two_segments_per_segment_until_the_clamp()
    {
        var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(1) });
        var (client, server) = Connected.Open(net);
        server.Observer = new ReadEverything();
        for (int i = 0; i < 40; i++)
        {
            client.Write(new byte[Mss]);
            net.Run(TimeSpan.FromMilliseconds(10));
        }

        var windows = net.Log.From(TwoHosts.ServerIp).Where(s => s.Ack > s.Header.AcknowledgmentNumber - 1 && s.Length == 0)
                         .Select(s => (int)s.Header.Window).Skip(1).ToList();   // the handshake ACK is the client's
        // Each segment raises rcv_ssthresh by 2896 from 64088 until tcp_space with that segment
        // held: (131072 - 2176) × 170 / 256 = 85595 (the clamp, 87040, is a little higher).
        // Windows 66, 69, 72, ... (rounded up to 1024), then 84 for good.
        int expected = 65536 - Mss;
        var expectedWindows = new List<int>();
        foreach (int _ in windows)
        {
            expected = Math.Min(expected + 2 * Mss, (131072 - FrameTruesize) * MeasuredRatio / 256);
            expectedWindows.Add((expected + 1023) / 1024);
        }
        Assert.Equal(expectedWindows, windows);
        Assert.Equal(84, windows[^1]);
    }

    [Fact]
    public void A_receiver_that_does_not_read_closes_its_window_without_offering_silly_windows()
    {
        var net = new TwoHosts();
        var (client, server) = Connected.Open(net);
        var source = new BulkSource(client, new byte[65536], 400_000);
        net.Run(TimeSpan.FromSeconds(5));   // the server application never reads

        var acks = net.Log.From(TwoHosts.ServerIp).Where(s => !s.FlagText.Contains('S')).Select(s => (Ack: (long)s.Ack, Window: s.Header.Window << 10)).ToList();
        // __tcp_select_window: once less than half the buffer is free, a new offer is either at
        // least one MSS (and 1/16 of the buffer) or zero. tcp_select_window never shrinks an
        // offer, so a smaller window only re-advertises the old right edge (rounded up to the
        // scale, 1024): the right edge never moves left, and never right by a sliver.
        for (int i = 1; i < acks.Count; i++)
        {
            long edge = acks[i].Ack + acks[i].Window, previous = acks[i - 1].Ack + acks[i - 1].Window;
            Assert.True(edge >= previous, $"right edge moved left at {i}");
            if (acks[i].Window is > 0 and < Mss) Assert.True(edge - previous < 1024, $"a sliver of {acks[i].Window} offered at {i}");
        }
        Assert.Equal(0, acks[^1].Window);
        Assert.True(net.Server.Counters[Mib.TcpExtTCPToZeroWindowAdv] >= 1);
        // What the server holds is what its buffer allows: Linux admits data while sk_rmem_alloc
        // is within sk_rcvbuf, each segment costing its truesize (tcp_clamp_window lets sk_rcvbuf
        // grow to what the window already let in).
        int held = server.ReadableBytes;
        Assert.InRange(held * (long)FrameTruesize / Mss, server.ReceiveBufferSize - 16 * FrameTruesize, server.ReceiveBufferSize + FrameTruesize);
        Assert.True(source.BytesWritten > held);
    }

    [Fact]
    public void Reading_sends_a_window_update_once_the_window_would_double()
    {
        var net = new TwoHosts();
        var (client, server) = Connected.Open(net);
        new BulkSource(client, new byte[65536], 400_000);
        net.Run(TimeSpan.FromSeconds(1));
        Assert.Equal(0, net.Log.From(TwoHosts.ServerIp).Last().Header.Window);
        net.Log.Segments.Clear();

        // tcp_cleanup_rbuf: a small read frees too little to double the (zero) window's
        // successor... reading one segment's worth leaves the free space below the SWS floor.
        server.Read(new byte[Mss]);
        Assert.Empty(net.Log.From(TwoHosts.ServerIp));

        // Reading most of the buffer makes a window of at least twice the current one: update now.
        server.Read(new byte[64 * 1024]);
        LoggedSegment update = Assert.Single(net.Log.From(TwoHosts.ServerIp));
        Assert.Equal("window update", update.Comment);
        Assert.True(update.Header.Window > 0);
    }

    [Fact]
    public void A_sender_facing_a_tiny_window_uses_half_the_largest_window_as_its_segment_size()
    {
        var net = new TwoHosts();
        // SO_RCVBUF 1000: sk_rcvbuf 2304 (SOCK_MIN_RCVBUF), a window of 1152 bytes.
        var (client, server) = Connected.Open(net, serverOptions: new TcpSocketOptions { ReceiveBufferSize = 1000 });
        server.Observer = new ReadEverything();
        client.Write(new byte[20_000]);
        net.Run(TimeSpan.FromSeconds(5));

        // tcp_bound_to_half_wnd: max_window 1152 > 536, so segments of 576 bytes: the sender
        // never waits for a full MSS that can never fit, nor sends slivers.
        Assert.Equal(576, client.SendMss);
        var data = net.Log.From(TwoHosts.ClientIp).Where(s => s.Length > 0).ToList();
        Assert.Equal(20_000, data.Sum(s => s.Length));
        Assert.All(data.SkipLast(1), s => Assert.Equal(576, s.Length));
    }

    [Fact]
    public void Nagle_holds_a_second_small_segment_until_the_first_is_acknowledged_and_TCP_NODELAY_does_not()
    {
        foreach (bool noDelay in new[] { false, true })
        {
            var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(10) });
            var (client, _) = Connected.Open(net, clientOptions: new TcpSocketOptions { NoDelay = noDelay });
            net.RunUntil(1);
            client.Write("first"u8);
            client.Write("second"u8);
            net.RunUntil(2);

            var data = net.Log.From(TwoHosts.ClientIp).Where(s => s.Length > 0).ToList();
            if (noDelay)
            {
                Assert.Equal([(5, 1.0), (6, 1.0)], data.Select(s => (s.Length, Math.Round(s.At.TotalSeconds, 3))));
            }
            else
            {
                // The second waits for the ACK of the first: one round trip (20 ms; the first data
                // after the handshake is acknowledged at once, in quick-ACK mode).
                Assert.Equal([(5, 1.0), (6, 1.02)], data.Select(s => (s.Length, Math.Round(s.At.TotalSeconds, 3))));
            }
            Assert.All(data, s => Assert.Equal("P.", s.FlagText));   // each ends a write: PSH
        }
    }

    [Fact]
    public void Receive_autotuning_grows_the_buffer_to_what_the_application_reads_per_RTT()
    {
        // 100 Mbit/s, 20 ms RTT: a bandwidth-delay product of 250 kB, more than the initial
        // 87040-byte window allows, so only a growing buffer fills the pipe.
        var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(10), RateBitsPerSecond = 100_000_000 });
        var (client, server) = Connected.Open(net);
        var sink = new BulkSink(server);
        new BulkSource(client, new byte[65536], long.MaxValue);
        net.Run(TimeSpan.FromSeconds(3));

        Assert.True(server.ReceiveBufferSize > 131072, $"rcvbuf {server.ReceiveBufferSize}");
        Assert.Equal(ReceiveMemory.WindowFromSpace(server.ScalingRatio, server.ReceiveBufferSize), server.WindowClamp);
        // The receiver's RTT (from timestamps) includes the queue the sender builds at the bottleneck.
        Assert.True(server.ReceiverRtt >= TimeSpan.FromMilliseconds(20), $"rcv_rtt {server.ReceiverRtt}");
        // At 100 Mbit/s for ~3 s, more than 85 % of the line rate is delivered.
        Assert.True(sink.BytesRead > 0.85 * 100e6 / 8 * 2.5, $"{sink.BytesRead} bytes");
        Assert.True(client.SendBufferSize > 87040, $"sndbuf {client.SendBufferSize}");
    }

    [Fact]
    public void SO_RCVBUF_and_SO_SNDBUF_are_doubled_and_turn_autotuning_off()
    {
        var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(10), RateBitsPerSecond = 100_000_000 });
        var (client, server) = Connected.Open(net, clientOptions: new TcpSocketOptions { SendBufferSize = 50_000 },
                                              serverOptions: new TcpSocketOptions { ReceiveBufferSize = 50_000 });
        new BulkSink(server);
        new BulkSource(client, new byte[65536], 5_000_000);
        net.Run(TimeSpan.FromSeconds(2));

        Assert.Equal(100_000, server.ReceiveBufferSize);
        Assert.Equal(100_000, client.SendBufferSize);
        Assert.Equal(ReceiveMemory.WindowFromSpace(server.ScalingRatio, 100_000), server.WindowClamp);
    }

    [Fact]
    public void The_send_buffer_starts_at_two_initial_windows_of_worst_case_skbs()
    {
        var net = new TwoHosts();
        var (client, _) = Connected.Open(net);
        // tcp_sndbuf_expand: 2 × max(10, cwnd) × (roundup_pow_of_two(1460 + 320 + 320) + 256).
        Assert.Equal(2 * 10 * (4096 + 256), client.SendBufferSize);
    }

    [Fact]
    public void A_steady_bulk_transfer_allocates_nothing_per_segment()
    {
        SteadyBulkTransfer steady = SteadyBulkTransfer.Measure(new TwoHosts(
            wire: WireOptions.Default with { Delay = TimeSpan.FromMicroseconds(50), RateBitsPerSecond = 1_000_000_000 }, capture: false));

        Assert.True(steady.Segments > 5_000, $"{steady.Segments} segments");
        Assert.Equal(0, steady.Allocated);
        Assert.True(steady.BytesRead > 0);
    }
}
