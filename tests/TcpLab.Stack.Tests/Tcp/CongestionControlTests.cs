using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tcp.Congestion;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>The algorithms on their own, driven by a scripted connection (what tcp_ack would tell them).</summary>
public class CongestionAlgorithmTests
{
    /// <summary>The parts of a connection an algorithm reads, set by the test.</summary>
    private sealed class ScriptedConnection : ICongestionHost
    {
        public CongestionWindow Window { get; } = new();
        public CongestionState State { get; set; }
        public Instant Now { get; set; } = Instant.FromSeconds(10);
        public int Hz => 250;
        public SeqNum SendUnacknowledged { get; set; } = new(1000);
        public SeqNum SendNext { get; set; } = new(1000);
        public Instant LastSendTime { get; set; }
        public long PacingRate { get; set; }
        public Counters Counters { get; } = new();

        /// <summary>One round trip of <paramref name="rtt"/> in which every packet of cwnd is ACKed, one ACK each, evenly spread.</summary>
        public void RoundTrip(CongestionControl cc, TimeSpan rtt)
        {
            int packets = Window.Cwnd;
            Window.IsCwndLimited = true;
            Window.MaxPacketsOut = packets;
            for (int i = 0; i < packets; i++)
            {
                Now += rtt / packets;
                SendUnacknowledged += 1448;
                SendNext += 1448;
                cc.PacketsAcked(this, 1, rtt);
                cc.CongestionAvoidance(this, SendUnacknowledged, 1);
            }
        }

        /// <summary>A loss at the current cwnd: ssthresh from the algorithm, cwnd down to it (the end of fast recovery).</summary>
        public void Loss(CongestionControl cc)
        {
            Window.Ssthresh = cc.Ssthresh(this);
            Window.Cwnd = Window.Ssthresh;
            Window.Count = 0;
        }
    }

    [Fact]
    public void Reno_halves_on_loss_and_then_adds_one_packet_per_round_trip()
    {
        var reno = (RenoCongestionControl)CongestionControl.Create("reno");
        var tcp = new ScriptedConnection { Window = { Cwnd = 40 } };
        tcp.Loss(reno);
        Assert.Equal((20, 20), (tcp.Window.Cwnd, tcp.Window.Ssthresh));
        for (int round = 1; round <= 5; round++)
        {
            tcp.RoundTrip(reno, TimeSpan.FromMilliseconds(100));
            Assert.Equal(20 + round, tcp.Window.Cwnd);
        }
    }

    [Fact]
    public void Slow_start_adds_the_packets_ACKed_up_to_ssthresh_and_the_rest_goes_to_congestion_avoidance()
    {
        var tcp = new ScriptedConnection { Window = { Cwnd = 10, Ssthresh = 12, IsCwndLimited = true } };
        var reno = CongestionControl.Create("reno");
        reno.CongestionAvoidance(tcp, tcp.SendUnacknowledged, 4);   // 2 to reach ssthresh, 2 credited in CA
        Assert.Equal((12, 2), (tcp.Window.Cwnd, tcp.Window.Count));
    }

    [Fact]
    public void Cwnd_does_not_grow_when_it_did_not_limit_the_sender()
    {
        var tcp = new ScriptedConnection { Window = { Cwnd = 20, Ssthresh = 10, IsCwndLimited = false, MaxPacketsOut = 5 } };
        CongestionControl.Create("cubic").CongestionAvoidance(tcp, tcp.SendUnacknowledged, 20);
        CongestionControl.Create("reno").CongestionAvoidance(tcp, tcp.SendUnacknowledged, 20);
        Assert.Equal(20, tcp.Window.Cwnd);
    }

    /// <summary>A CUBIC connection that just recovered from a loss at <paramref name="cwnd"/>.</summary>
    private static (CongestionControl Cubic, ScriptedConnection Tcp) CubicAfterLossAt(int cwnd)
    {
        var cubic = CongestionControl.Create("cubic");
        var tcp = new ScriptedConnection { Window = { Cwnd = cwnd, Ssthresh = cwnd } };
        cubic.Init(tcp);
        tcp.Loss(cubic);
        return (cubic, tcp);
    }

    /// <summary>Round trips (100 ms unless said) from a loss until <paramref name="seconds"/> later; cwnd after each.</summary>
    private static List<(double T, int Cwnd)> Curve(ScriptedConnection tcp, CongestionControl cubic, double seconds, double rtt = 0.1)
    {
        Instant lossAt = tcp.Now;
        var samples = new List<(double T, int Cwnd)>();
        while (tcp.Now - lossAt < TimeSpan.FromSeconds(seconds))
        {
            tcp.RoundTrip(cubic, TimeSpan.FromSeconds(rtt));
            samples.Add(((tcp.Now - lossAt).TotalSeconds, tcp.Window.Cwnd));
        }
        return samples;
    }

    [Fact]
    public void CUBIC_sets_ssthresh_to_0_7_of_cwnd_and_follows_the_cubic_back_to_Wmax_after_K_seconds_RFC_9438()
    {
        var (cubic, tcp) = CubicAfterLossAt(1000);
        Assert.Equal(1000 * 717 / 1024, tcp.Window.Ssthresh);

        // W_cubic(t) = C (t - K)^3 + W_max, C = 0.4, K = cbrt(W_max (1 - beta) / C); Linux aims
        // one minimum RTT ahead, so cwnd reaches W_cubic(t + RTT) at t. (At this window the
        // Reno-friendly estimate stays below the cubic.)
        double beta = 717 / 1024.0, c = 0.4, wMax = 1000, rtt = 0.1;
        double k = Math.Cbrt(wMax * (1 - beta) / c);
        var samples = Curve(tcp, cubic, 2 * k);
        foreach (var (t, cwnd) in samples.Where(s => s.T > 1))
        {
            double target = c * Math.Pow(t + rtt - k, 3) + wMax;
            Assert.InRange(cwnd, target * 0.98 - 2, target * 1.02 + 2);
        }
        // Concave up to the plateau at W_max around K, convex beyond it.
        Assert.InRange(samples.First(s => s.T >= k - rtt).Cwnd, 995, 1005);
        Assert.True(samples[^1].Cwnd > 1100, $"cwnd {samples[^1].Cwnd}");
    }

    [Fact]
    public void CUBIC_fast_convergence_lowers_Wmax_when_a_loss_comes_below_the_previous_maximum()
    {
        var (cubic, tcp) = CubicAfterLossAt(1000);
        tcp.Window.Cwnd = 900;   // the next loss comes at 900 < W_max = 1000
        tcp.Loss(cubic);
        Assert.Equal(900 * 717 / 1024, tcp.Window.Ssthresh);

        // W_max becomes 900 (1 + beta) / 2 = 765: the plateau is there, not at 900.
        double wMax = 900 * (1024 + 717) / 2048;
        double k = Math.Cbrt((wMax - tcp.Window.Cwnd) / 0.4);
        var samples = Curve(tcp, cubic, k + 1);
        Assert.InRange(samples.First(s => s.T >= k - 0.1).Cwnd, wMax - 5, wMax + 5);
    }

    [Fact]
    public void In_the_Reno_friendly_region_CUBIC_grows_as_fast_as_standard_TCP_would()
    {
        // A short RTT (10 ms): per second the cubic barely moves towards W_max, while a Reno flow
        // with beta 0.7 gains 3 (1 - beta) / (1 + beta) ≈ 0.53 packets per round trip (RFC 9438 4.3).
        var (cubic, tcp) = CubicAfterLossAt(100);
        int start = tcp.Window.Cwnd;
        var samples = Curve(tcp, cubic, 1, rtt: 0.01);
        double renoFriendly = start + 100 * 3 * (1 - 0.7) / (1 + 0.7);
        double cubicTarget = 0.4 * Math.Pow(1.01 - Math.Cbrt(100 * 0.3 / 0.4), 3) + 100;
        Assert.True(renoFriendly > cubicTarget);
        Assert.InRange(samples[^1].Cwnd, renoFriendly * 0.95, renoFriendly * 1.05);
    }

    [Fact]
    public void HyStart_ends_slow_start_when_the_round_trip_grows_by_an_eighth_of_the_minimum()
    {
        var cubic = CongestionControl.Create("cubic");
        var tcp = new ScriptedConnection { Window = { Cwnd = 32 } };
        cubic.Init(tcp);
        TimeSpan baseRtt = TimeSpan.FromMilliseconds(80);
        // One round at the base delay sets delay_min (ACKs 10 ms apart: no ACK train).
        tcp.SendNext += 32 * 1448;
        for (int i = 0; i < 32; i++) Ack(baseRtt, TimeSpan.FromMilliseconds(10));
        Assert.True(tcp.Window.InSlowStart);
        // The next round's minimum is 80 + max(4 ms, 80/8 = 10 ms) + 1: beyond the threshold after 8 samples.
        tcp.SendNext += 64 * 1448;
        for (int i = 0; i < 9; i++) Ack(baseRtt + TimeSpan.FromMilliseconds(11), TimeSpan.FromMilliseconds(10));

        Assert.Equal(tcp.Window.Cwnd, tcp.Window.Ssthresh);
        Assert.Equal(1, tcp.Counters[Mib.TcpExtTCPHystartDelayDetect]);
        Assert.Equal(0, tcp.Counters[Mib.TcpExtTCPHystartTrainDetect]);

        void Ack(TimeSpan rtt, TimeSpan spacing)
        {
            tcp.Now += spacing;
            tcp.SendUnacknowledged += 1448;
            cubic.PacketsAcked(tcp, 1, rtt);
        }
    }

    [Fact]
    public void HyStart_ends_slow_start_when_a_train_of_close_ACKs_lasts_longer_than_half_the_minimum_delay()
    {
        var cubic = CongestionControl.Create("cubic");
        var tcp = new ScriptedConnection { Window = { Cwnd = 32 } };
        tcp.SendNext += 100 * 1448;   // one round: until this is ACKed
        cubic.Init(tcp);
        // ACKs 1 ms apart (within hystart_ack_delta_us, 2 ms) at a constant 10 ms RTT: the train
        // is longer than delay_min / 2 = 5 ms after the sixth.
        int acks = 0;
        while (tcp.Window.InSlowStart && acks < 20)
        {
            tcp.Now += TimeSpan.FromMilliseconds(1);
            tcp.SendUnacknowledged += 1448;
            cubic.PacketsAcked(tcp, 1, TimeSpan.FromMilliseconds(10));
            acks++;
        }
        Assert.Equal(6, acks);
        Assert.Equal(1, tcp.Counters[Mib.TcpExtTCPHystartTrainDetect]);
        Assert.Equal(32, tcp.Counters[Mib.TcpExtTCPHystartTrainCwnd]);
    }

    [Fact]
    public void Cubic_root_matches_the_real_cube_root_within_the_kernels_precision()
    {
        foreach (ulong a in new ulong[] { 1, 7, 64, 1000, 123_456_789, 1UL << 40, 75UL << 30 })
        {
            double exact = Math.Cbrt(a);
            Assert.InRange(CubicCongestionControl.CubicRoot(a), exact * 0.99 - 1, exact * 1.01 + 1);
        }
    }
}

/// <summary>Congestion control on a connection: the initial window, slow start, the choice of algorithm, restart after idle.</summary>
public class CongestionControlTests
{
    private static readonly TimeSpan D = TimeSpan.FromMilliseconds(50);

    /// <summary>A client that reads everything and offers a 208 KB window (SO_RCVBUF at rmem_max).</summary>
    private static Burst BigWindow(Action<Sysctls>? sysctls = null, TcpSocketOptions? serverOptions = null)
    {
        var burst = new Burst(D, sysctls, clientOptions: new TcpSocketOptions { ReceiveBufferSize = 212_992 },
                              serverOptions: serverOptions ?? new TcpSocketOptions { SendBufferSize = 212_992 });
        burst.Client.Observer = new ReadEverything();
        return burst;
    }

    [Fact]
    public void Slow_start_sends_the_initial_window_of_ten_then_doubles_every_round_trip()
    {
        Burst burst = BigWindow();
        burst.Send(140);
        burst.Net.RunUntil(1.35);

        // A round's segments leave as the ACKs of the previous round arrive, one RTT later (some
        // of those ACKs are delayed by 40 ms once the receiver leaves quick-ACK mode).
        int[] rounds = Enumerable.Range(0, 4)
            .Select(k => burst.ServerData().Count(s => s.At.TotalSeconds >= 1.0 + k * burst.Rtt && s.At.TotalSeconds < 1.0 + (k + 1) * burst.Rtt)).ToArray();
        Assert.Equal([10, 20, 40, 70], rounds);   // 10 + 20 + 40 + the 70 left of 140
    }

    [Fact]
    public void TCP_CONGESTION_picks_the_algorithm_per_socket_and_a_listener_passes_it_on()
    {
        Burst burst = new(D, lost: [3], serverOptions: new TcpSocketOptions { CongestionControl = "reno", SendBufferSize = 200_000 });
        burst.Send(10);
        burst.Net.RunUntil(3);

        Assert.Equal(("reno", "cubic"), (burst.Server.CongestionAlgorithm, burst.Client.CongestionAlgorithm));
        Assert.Equal(12 / 2, burst.Server.SlowStartThreshold);   // Reno halves the 12 of the fast retransmit
    }

    [Fact]
    public void The_tcp_congestion_control_sysctl_sets_the_hosts_default_and_refuses_unknown_names()
    {
        Burst burst = new(D, s => s.TcpCongestionControl = "reno");
        Assert.Equal("reno", burst.Server.CongestionAlgorithm);

        var sysctls = new Sysctls();
        SysctlRegistry.Set(sysctls, "net.ipv4.tcp_congestion_control", "reno");
        Assert.Equal("reno", SysctlRegistry.Get(sysctls, "net.ipv4.tcp_congestion_control"));
        var error = Assert.Throws<SysctlException>(() => SysctlRegistry.Set(sysctls, "net.ipv4.tcp_congestion_control", "bbr"));
        Assert.Contains("available: reno cubic", error.Message);
        Assert.Equal("cubic", new Sysctls().TcpCongestionControl);
        Assert.Equal(Errno.ENOENT, Assert.Throws<TcpException>(() => new TcpSocketOptions { CongestionControl = "bbr" }.Validate()).Errno);
    }

    [Fact]
    public void Switching_the_algorithm_of_an_established_connection_applies_to_its_next_loss()
    {
        Burst burst = new(D, lost: [3]);
        Assert.Equal("cubic", burst.Server.CongestionAlgorithm);
        burst.Server.SetCongestionControl("reno");   // setsockopt(TCP_CONGESTION) after connect
        burst.Send(10);
        burst.Net.RunUntil(3);

        Assert.Equal(("reno", "reno"), (burst.Server.CongestionAlgorithm, burst.Server.Options.CongestionControl));
        Assert.Equal(12 / 2, burst.Server.SlowStartThreshold);
        Assert.Equal(Errno.ENOENT, Assert.Throws<TcpException>(() => burst.Server.SetCongestionControl("vegas")).Errno);
    }

    [Fact]
    public void After_an_idle_period_longer_than_the_RTO_the_sender_restarts_from_the_initial_window()
    {
        Burst burst = BigWindow();
        burst.Send(100);
        burst.Net.RunUntil(5);
        int cwndBefore = burst.Server.CongestionWindow;
        Assert.True(cwndBefore > 40, $"cwnd {cwndBefore}");

        burst.Send(100);   // at t = 5 s, idle for several RTOs
        burst.Net.RunUntil(5.01);
        Assert.Equal(10, burst.ServerData().Count(s => s.At.TotalSeconds == 5.0));
        Assert.Contains("cubic", SocketTable.Format(SocketTable.Snapshot(burst.Net.Server)));
    }

    [Fact]
    public void With_tcp_slow_start_after_idle_0_the_whole_window_is_used_after_idle()
    {
        Burst burst = BigWindow(s => s.TcpSlowStartAfterIdle = false);
        burst.Send(100);
        burst.Net.RunUntil(5);
        int cwndBefore = burst.Server.CongestionWindow;

        burst.Send(100);
        burst.Net.RunUntil(5.01);
        Assert.Equal(Math.Min(cwndBefore, 100), burst.ServerData().Count(s => s.At.TotalSeconds == 5.0));
    }

    [Fact]
    public void The_socket_table_shows_the_algorithm_cwnd_and_ssthresh_as_ss_i_does()
    {
        Burst burst = new(D, lost: [3]);
        burst.Send(10);
        burst.Net.RunUntil(3);

        string table = SocketTable.Format(SocketTable.Snapshot(burst.Net.Server));
        Assert.Contains($"ts sack cubic wscale:", table);
        Assert.Contains($" cwnd:{burst.Server.CongestionWindow} ssthresh:{burst.Server.SlowStartThreshold}", table);
        Assert.Contains(" retrans:0/1", table);
    }
}
