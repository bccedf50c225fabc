using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// The listener's two queues against tcp_conn_request, tcp_check_req, sk_acceptq_is_full and
/// inet_csk_reqsk_queue_is_full: sizes, what `ss` shows, and what happens at overflow.
/// </summary>
public class ListenQueueTests
{
    private static readonly Ipv4Address Spoofed = Ipv4Address.Parse("10.0.0.77");

    [Theory]
    [InlineData(16, 4096, 16)]
    [InlineData(16, 8, 8)]          // capped by net.core.somaxconn
    [InlineData(-1, 4096, 4096)]    // __sys_listen_socket compares as unsigned: negative means somaxconn
    [InlineData(0, 4096, 0)]
    public void The_backlog_is_min_of_listen_and_somaxconn(int backlog, int somaxconn, int expected)
    {
        var net = new TwoHosts(server: s => s.Somaxconn = somaxconn);
        Assert.Equal(expected, net.Server.Tcp.Listen(Ipv4Address.Any, 80, backlog).Backlog);
    }

    [Fact]
    public void The_accept_queue_holds_backlog_plus_one_and_a_SYN_that_finds_it_full_gets_no_answer_even_with_syncookies()
    {
        var net = new TwoHosts();
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 1);
        TcpConnection first = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(0.5);
        TcpConnection second = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(1);
        TcpConnection third = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(4.5);

        Assert.Equal((TcpState.Established, TcpState.Established, TcpState.SynSent), (first.State, second.State, third.State));
        Assert.Equal(2, listener.AcceptQueueLength);
        Assert.DoesNotContain(net.Log.From(TwoHosts.ServerIp), s => s.Header.DestinationPort == third.Tuple.LocalPort);
        // The SYN at 1 s and its retransmissions at 2, 3 and 4 s were each dropped silently.
        Assert.Equal(4, net.Server.Counters[Mib.TcpExtListenOverflows]);
        Assert.Equal(4, net.Server.Counters[Mib.TcpExtListenDrops]);
        Assert.Equal(0, net.Server.Counters[Mib.TcpExtSyncookiesSent]);

        // accept() makes room: the next retransmitted SYN (at 5 s) gets through.
        Assert.NotNull(listener.TryAccept());
        net.RunUntil(6);
        Assert.Equal(TcpState.Established, third.State);
        Assert.Equal(5.0, net.Log.From(TwoHosts.ServerIp).First(s => s.Header.DestinationPort == third.Tuple.LocalPort).At.TotalSeconds, 6);
    }

    [Fact]
    public void The_listener_row_of_ss_shows_the_accept_queue_as_Recv_Q_and_the_backlog_as_Send_Q()
    {
        var net = new TwoHosts();
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 5);
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(1);

        string table = SocketTable.Format(SocketTable.Snapshot(net.Server));
        Assert.Contains("LISTEN          2      5 0.0.0.0:80", table);
    }

    /// <summary>
    /// Backlog 1, the application never accepts: A connects at 0 s and waits in the accept
    /// queue; B and C connect together at 1 s. Both SYNs are admitted (the accept queue holds
    /// one, not more than the backlog), B's final ACK fills the queue (two = backlog + 1), and
    /// C's final ACK finds it full.
    /// </summary>
    private static (TwoHosts Net, ListenSocket Listener, TcpConnection B, TcpConnection C) OverflowAtTheFinalAck(bool abortOnOverflow)
    {
        var net = new TwoHosts(server: s => s.TcpAbortOnOverflow = abortOnOverflow);
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 1);
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(1);
        TcpConnection b = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        TcpConnection c = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(1.5);
        return (net, listener, b, c);
    }

    [Fact]
    public void With_abort_on_overflow_0_the_final_ACK_is_dropped_SYN_ACKs_are_retransmitted_and_the_client_thinks_it_is_connected()
    {
        var (net, listener, b, c) = OverflowAtTheFinalAck(abortOnOverflow: false);
        var serverStates = new StateLog(net.Server);

        Assert.Equal((TcpState.Established, TcpState.Established), (b.State, c.State));
        Assert.Equal(2, listener.AcceptQueueLength);
        RequestSocket request = Assert.Single(net.Server.Tcp.Flows.OfType<RequestSocket>());
        Assert.Equal(c.Tuple.LocalPort, request.Tuple.RemotePort);
        Assert.True(request.Acked);

        net.RunUntil(100);

        // reqsk_timer_handler: SYN-ACKs after 1, 2, 4, 8 and 16 s; each answered by the client
        // (an ESTABLISHED socket meeting a SYN sends a challenge ACK), each answer dropped again.
        var synAcks = net.Log.From(TwoHosts.ServerIp).Where(s => s.Header.DestinationPort == c.Tuple.LocalPort && s.Is(TcpFlags.Syn | TcpFlags.Ack));
        Assert.Equal([1, 2, 4, 8, 16, 32], synAcks.Select(s => s.At.TotalSeconds));
        Assert.Equal(5, net.Client.Counters[Mib.TcpExtTCPSYNChallenge]);
        Assert.Equal(6, net.Server.Counters[Mib.TcpExtListenOverflows]);
        Assert.Equal(6, net.Server.Counters[Mib.TcpExtListenDrops]);
        // After the last timeout (32 s more) the request goes, silently; the client never hears of it.
        Assert.Equal(64.0, Assert.Single(serverStates.Changes, s => s.To == TcpState.Closed).At.TotalSeconds, 6);
        Assert.Equal(0, net.Server.Counters[Mib.TcpOutRsts]);
        Assert.Equal(TcpState.Established, c.State);
    }

    [Fact]
    public void With_abort_on_overflow_0_the_clients_data_meets_a_reset_once_the_request_is_gone()
    {
        var (net, listener, _, c) = OverflowAtTheFinalAck(abortOnOverflow: false);
        c.Write(new byte[100]);

        net.RunUntil(200);

        Assert.Equal(Errno.ECONNRESET, c.Error);
        LoggedSegment reset = Assert.Single(net.Log.From(TwoHosts.ServerIp), s => (s.Flags & TcpFlags.Rst) != 0);
        Assert.Equal("RST: ACK to a listener (no connection, no request, no valid syncookie)", reset.Comment);
        // The reset answers the first retransmission of the data after the request expired at 64 s.
        LoggedSegment lastData = net.Log.From(TwoHosts.ClientIp).Last(s => s.Length == 100);
        Assert.True(lastData.At.TotalSeconds > 64, net.Log.Dump());
        Assert.Equal(lastData.At, reset.At);
        Assert.Equal(2, listener.AcceptQueueLength);
    }

    [Fact]
    public void With_abort_on_overflow_0_the_connection_completes_when_accept_catches_up()
    {
        var (net, listener, _, c) = OverflowAtTheFinalAck(abortOnOverflow: false);
        c.Write(new byte[100]);
        net.RunUntil(1.6);
        Assert.NotNull(listener.TryAccept());

        net.RunUntil(10);

        // The data's next retransmission finds room: the request becomes a connection that holds the data.
        Assert.Equal(2, listener.AcceptQueueLength);
        Assert.NotNull(listener.TryAccept());
        TcpConnection atServer = listener.TryAccept()!;
        Assert.Equal(c.Tuple.LocalPort, atServer.Tuple.RemotePort);
        Assert.Equal(100, atServer.ReadableBytes);
        Assert.Empty(net.Server.Tcp.Flows.OfType<RequestSocket>());
        Assert.Equal(TcpState.Established, c.State);
    }

    [Fact]
    public void With_abort_on_overflow_1_the_final_ACK_is_answered_with_RST()
    {
        var (net, listener, _, c) = OverflowAtTheFinalAck(abortOnOverflow: true);

        Assert.Equal(Errno.ECONNRESET, c.Error);
        Assert.Equal(TcpState.Closed, c.State);
        LoggedSegment reset = Assert.Single(net.Log.From(TwoHosts.ServerIp), s => (s.Flags & TcpFlags.Rst) != 0);
        Assert.Equal(("R", "RST: accept queue full, tcp_abort_on_overflow=1"), (reset.FlagText, reset.Comment));
        Assert.Empty(net.Server.Tcp.Flows.OfType<RequestSocket>());
        Assert.Equal(1, net.Server.Counters[Mib.TcpExtListenOverflows]);
        Assert.Equal(1, net.Server.Counters[Mib.TcpExtEmbryonicRsts]);
        Assert.Equal(2, listener.AcceptQueueLength);
    }

    [Fact]
    public void Up_to_half_full_every_request_gets_tcp_synack_retries()
    {
        (TwoHosts net, StateLog states) = UnansweredRequests(8);

        for (ushort port = 20000; port < 20008; port++) Assert.Equal([0.0, 1, 3, 7, 15, 31], SynAcks(net, port));
        Assert.All(states.Changes.Where(c => c.To == TcpState.Closed), c => Assert.Equal(63.0, (c.At - Instant.Zero).TotalSeconds, 3));
    }

    [Fact]
    public void When_the_SYN_queue_is_more_than_half_full_old_requests_get_fewer_SYN_ACK_retries()
    {
        // reqsk_timer_handler: a request that has timed out once is old. While the queue is
        // longer than half of max(8, backlog) and the young are fewer than half of it, the retry
        // limit falls towards 2. At 7 s all 12 are old: the first to come due are dropped after
        // 2 retries until the queue is back to half (8), and those left keep the full 5.
        (TwoHosts net, StateLog states) = UnansweredRequests(12);

        for (ushort port = 20000; port < 20004; port++) Assert.Equal([0.0, 1, 3], SynAcks(net, port));
        for (ushort port = 20004; port < 20012; port++) Assert.Equal([0.0, 1, 3, 7, 15, 31], SynAcks(net, port));
        Assert.Equal([7.0, 7, 7, 7, 63, 63, 63, 63, 63, 63, 63, 63],
                     states.Changes.Where(c => c.To == TcpState.Closed).Select(c => Math.Round((c.At - Instant.Zero).TotalSeconds, 3)));
    }

    /// <summary>Backlog 16 (17 requests fit), <paramref name="count"/> SYNs from a source that never answers.</summary>
    private static (TwoHosts Net, StateLog States) UnansweredRequests(int count)
    {
        var net = new TwoHosts();
        var states = new StateLog(net.Server);
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        SendSyns(net, count);
        net.RunUntil(100);
        return (net, states);
    }

    private static double[] SynAcks(TwoHosts net, ushort port) =>
        net.Log.From(TwoHosts.ServerIp).Where(s => s.Header.DestinationPort == port).Select(s => Math.Round(s.At.TotalSeconds, 3)).ToArray();

    private static void SendSyns(TwoHosts net, int count, ushort firstPort = 20000)
    {
        var injector = new Injector(net);
        injector.StandInFor(a => a == Spoofed);
        for (int i = 0; i < count; i++)
            injector.Send(Spoofed, TwoHosts.ServerIp, new TcpHeader
            {
                SourcePort = (ushort)(firstPort + i), DestinationPort = 80, SequenceNumber = 1000, Flags = TcpFlags.Syn, Window = 64240,
            });
        net.RunUntil(0.5);
    }

    [Theory]
    [InlineData(1, 3, 1)]   // syncookies on: the SYN queue holds backlog + 1, the rest get cookies
    [InlineData(0, 3, 0)]   // off: the rest are dropped
    public void The_SYN_queue_holds_backlog_plus_one_requests_then_cookies_or_drops(int syncookies, int requests, int perCookieOrDrop)
    {
        var net = new TwoHosts(server: s => s.TcpSyncookies = syncookies);
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 2);
        SendSyns(net, 5);

        Assert.Equal(requests, listener.SynQueueLength);
        Assert.Equal(2 * perCookieOrDrop, net.Server.Counters[Mib.TcpExtSyncookiesSent]);
        Assert.Equal(2 * perCookieOrDrop, net.Server.Counters[Mib.TcpExtTCPReqQFullDoCookies]);
        Assert.Equal(2 * (1 - perCookieOrDrop), net.Server.Counters[Mib.TcpExtTCPReqQFullDrop]);
        Assert.Equal(2 * (1 - perCookieOrDrop), net.Server.Counters[Mib.TcpExtListenDrops]);
    }

    [Theory]
    [InlineData(false, 1)]   // current kernels: more than the backlog is full, so backlog 0 admits one
    [InlineData(true, 0)]    // 4.4 to 6.13: listen(0) without syncookies admits nothing
    public void Backlog_0_without_syncookies_depends_on_the_SYN_queue_full_rule(bool fullAtBacklog, int expectedRequests)
    {
        var net = new TwoHosts(server: s => { s.TcpSyncookies = 0; s.LabSynQueueFullAtBacklog = fullAtBacklog; });
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 0);
        SendSyns(net, 1);

        Assert.Equal(expectedRequests, listener.SynQueueLength);
        Assert.Equal(1 - expectedRequests, net.Server.Counters[Mib.TcpExtTCPReqQFullDrop]);
    }

    [Fact]
    public void Without_syncookies_the_last_quarter_of_tcp_max_syn_backlog_is_kept_for_proven_peers()
    {
        var net = new TwoHosts(server: s => { s.TcpSyncookies = 0; s.TcpMaxSynBacklog = 8; });
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 100);
        SendSyns(net, 10);

        // 8 - 7 < 8 / 4: the eighth and later SYNs are dropped (counted as ListenDrops only).
        Assert.Equal(7, listener.SynQueueLength);
        Assert.Equal(3, net.Server.Counters[Mib.TcpExtListenDrops]);
        Assert.Equal(0, net.Server.Counters[Mib.TcpExtTCPReqQFullDrop]);
    }

    [Fact]
    public void A_request_is_a_small_record_not_a_connection()
    {
        var net = new TwoHosts();
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        SendSyns(net, 3);

        Assert.All(net.Server.Tcp.Flows, f => Assert.IsType<RequestSocket>(f));
        Assert.Equal(3, net.Server.Tcp.Flows.Count());
    }
}
