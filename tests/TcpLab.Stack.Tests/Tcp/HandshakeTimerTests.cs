using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>SYN and SYN-ACK retransmission timelines against Linux 6.x semantics (tcp_write_timeout, reqsk_timer_handler).</summary>
public class HandshakeTimerTests
{
    /// <summary>Every SYN from the client is lost in the network (the server never sees one).</summary>
    private static TwoHosts WithLostSyns(Action<Settings.Sysctls>? client = null)
    {
        var net = new TwoHosts(client: client, serverLink: link => new FilterLink(link) { DropIncoming = v => v.Is(TcpFlags.Syn) });
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 128);
        return net;
    }

    private static double[] SynTimes(TwoHosts net) =>
        net.Log.Segments.Where(s => s.Is(TcpFlags.Syn)).Select(s => Math.Round(s.At.TotalSeconds, 6)).ToArray();

    [Fact]
    public void Default_sysctls_send_SYNs_at_0_1_2_3_4_5_7_11_19_35_67_and_fail_with_ETIMEDOUT_at_131s()
    {
        var net = WithLostSyns();
        var states = new StateLog(net.Client);
        TcpConnection c = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);

        net.RunUntil(200);

        Assert.Equal([0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67], SynTimes(net));
        Assert.Equal(Errno.ETIMEDOUT, c.Error);
        Assert.Equal(131.0, states.When(c.Tuple, TcpState.Closed), 6);
        Assert.Equal("SYN_SENT CLOSED", states.Path(c.Tuple));
        Assert.Equal(10, net.Client.Counters[Mib.TcpExtTCPSynRetrans]);
        Assert.Equal(11, net.Client.Counters[Mib.TcpExtTCPTimeouts]);
        Assert.Equal(1, net.Client.Counters[Mib.TcpAttemptFails]);
        Assert.Equal("RTO: SYN retransmit 5/10, rto 1 s", net.Log.Segments[5].Comment);
        Assert.Equal("RTO: SYN retransmit 6/10, rto 2 s", net.Log.Segments[6].Comment);
    }

    [Fact]
    public void Without_linear_timeouts_six_retries_double_from_1s_and_fail_at_127s()
    {
        var net = WithLostSyns(s => s.TcpSynLinearTimeouts = 0);
        var states = new StateLog(net.Client);
        TcpConnection c = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);

        net.RunUntil(200);

        Assert.Equal([0, 1, 3, 7, 15, 31, 63], SynTimes(net));
        Assert.Equal(127.0, states.When(c.Tuple, TcpState.Closed), 6);
        Assert.Equal(Errno.ETIMEDOUT, c.Error);
    }

    [Fact]
    public void The_documents_setting_of_five_retries_gives_up_at_63s()
    {
        var net = WithLostSyns(s => { s.TcpSynLinearTimeouts = 0; s.TcpSynRetries = 5; });
        var states = new StateLog(net.Client);
        TcpConnection c = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);

        net.RunUntil(200);

        Assert.Equal([0, 1, 3, 7, 15, 31], SynTimes(net));
        Assert.Equal(63.0, states.When(c.Tuple, TcpState.Closed), 6);
    }

    [Fact]
    public void Two_retries_with_linear_timeouts_hit_the_7s_time_budget_before_the_retry_count_as_Linux_does()
    {
        // Measured on Linux 6.18 (scratch namespaces, SYNs dropped by iptables):
        // SYNs at 0, 1.007, 2.031, 3.055, 4.079, 5.103 s, connect() fails after 7.119 s.
        var net = WithLostSyns(s => s.TcpSynRetries = 2);
        var states = new StateLog(net.Client);
        TcpConnection c = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);

        net.RunUntil(30);

        Assert.Equal([0, 1, 2, 3, 4, 5], SynTimes(net));
        Assert.Equal(7.0, states.When(c.Tuple, TcpState.Closed), 6);
    }

    [Fact]
    public void TCP_SYNCNT_overrides_the_sysctl_for_one_socket()
    {
        var net = WithLostSyns(s => s.TcpSynLinearTimeouts = 0);
        TcpConnection c = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, new TcpSocketOptions { SynRetries = 1 });

        net.RunUntil(30);

        Assert.Equal([0, 1], SynTimes(net));
        Assert.Equal(Errno.ETIMEDOUT, c.Error);
    }

    [Fact]
    public void The_timer_wheel_model_makes_SYN_retransmissions_late_like_a_real_kernel()
    {
        var net = WithLostSyns(s => { s.TcpSynRetries = 2; s.LabTimerWheelSlack = true; });
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);

        net.RunUntil(30);

        // 1 s = 250 ticks at HZ=250 falls in wheel level 1 (8-tick granularity): each timer
        // fires 1..8 ticks late, as the Linux measurement above shows (1.007, 2.031, ...).
        double[] times = SynTimes(net);
        double[] gaps = times.Zip(times.Skip(1), (a, b) => b - a).ToArray();
        Assert.All(gaps, g => Assert.InRange(g, 1.004, 1.032));
    }

    [Fact]
    public void A_lone_SYN_gets_SYN_ACKs_at_0_1_3_7_15_31_and_the_request_is_dropped_silently_at_63s()
    {
        // Only the first SYN reaches the server, and every SYN-ACK is lost on the way back.
        int synsSent = 0;
        var net = new TwoHosts(clientLink: link => new FilterLink(link) { DropIncoming = v => v.Is(TcpFlags.Syn | TcpFlags.Ack) },
                               serverLink: link => new FilterLink(link) { DropIncoming = v => v.Is(TcpFlags.Syn) && synsSent++ > 0 });
        var serverStates = new StateLog(net.Server);
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 128);
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, new TcpSocketOptions { SynRetries = 127 });

        net.RunUntil(100);

        double[] synAcks = net.Log.Segments.Where(s => s.Is(TcpFlags.Syn | TcpFlags.Ack)).Select(s => s.At.TotalSeconds).ToArray();
        Assert.Equal([0, 1, 3, 7, 15, 31], synAcks);
        var change = Assert.Single(serverStates.Changes, c => c.To == TcpState.Closed);
        Assert.Equal(63.0, change.At.TotalSeconds, 6);
        Assert.Equal(0, listener.SynQueueLength);
        Assert.Equal(5, net.Server.Counters[Mib.TcpExtTCPSynRetrans]);
        Assert.Equal(0, net.Server.Counters[Mib.TcpOutRsts]);
    }

    [Fact]
    public void A_retransmitted_SYN_is_answered_at_once_not_counted_and_pushes_the_SYN_ACK_timer_out()
    {
        // Only the client's first SYN gets through (its own retransmissions, from 1 s on, are lost),
        // every SYN-ACK is lost; at 0.6 s a copy of the SYN arrives, as a retransmission would.
        TwoHosts? net = null;
        net = new TwoHosts(clientLink: link => new FilterLink(link) { DropIncoming = v => v.Is(TcpFlags.Syn | TcpFlags.Ack) },
                           serverLink: link => new FilterLink(link) { DropIncoming = v => v.Is(TcpFlags.Syn) && net!.Loop.Now.TotalSeconds >= 0.9 });
        var injector = new Injector(net);
        var serverStates = new StateLog(net.Server);
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 128);
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, new TcpSocketOptions { SynRetries = 127 });
        net.RunUntil(0.6);
        injector.Send(TwoHosts.ClientIp, TwoHosts.ServerIp, net.Log.Segments.First(s => s.Is(TcpFlags.Syn)).Header);

        net.RunUntil(100);

        var synAcks = net.Log.From(TwoHosts.ServerIp).Where(s => s.Is(TcpFlags.Syn | TcpFlags.Ack)).ToList();
        Assert.Equal([0, 0.6, 1.6, 3.6, 7.6, 15.6, 31.6], synAcks.Select(s => Math.Round(s.At.TotalSeconds, 6)));
        Assert.StartsWith("SYN-ACK for a retransmitted SYN", synAcks[1].Comment);
        Assert.Equal("SYN-ACK timer: retransmit 1/5, timeout 1 s", synAcks[2].Comment);
        Assert.Equal("SYN-ACK timer: retransmit 5/5, timeout 16 s", synAcks[6].Comment);
        Assert.Equal(63.6, Assert.Single(serverStates.Changes, c => c.To == TcpState.Closed).At.TotalSeconds, 6);
    }

    [Fact]
    public void Duplicate_SYNs_within_500ms_get_only_one_immediate_SYN_ACK()
    {
        var net = new TwoHosts(clientLink: link => new FilterLink(link) { DropIncoming = v => v.Is(TcpFlags.Syn | TcpFlags.Ack) });
        var injector = new Injector(net);
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 128);
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(0.1);
        // Replay the client's SYN twice, 100 ms apart: tcp_invalid_ratelimit (500 ms) lets one through.
        TcpHeader syn = net.Log.Segments.First(s => s.Is(TcpFlags.Syn)).Header;
        injector.Send(TwoHosts.ClientIp, TwoHosts.ServerIp, syn);
        net.RunUntil(0.2);
        injector.Send(TwoHosts.ClientIp, TwoHosts.ServerIp, syn);
        net.RunUntil(0.3);

        int immediate = net.Log.Segments.Count(s => s.Comment.StartsWith("SYN-ACK for a retransmitted SYN", StringComparison.Ordinal));
        Assert.Equal(1, immediate);
        Assert.Equal(1, net.Server.Counters[Mib.TcpExtTCPACKSkippedSynRecv]);
    }
}
