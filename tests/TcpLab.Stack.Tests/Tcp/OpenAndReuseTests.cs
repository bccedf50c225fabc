using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

public class OpenAndReuseTests
{
    [Fact]
    public void A_SYN_to_a_closed_port_gets_RST_ACK_with_seq_0_and_ack_ISN_plus_1_and_connect_fails_ECONNREFUSED()
    {
        var net = new TwoHosts();
        TcpConnection c = net.Client.Tcp.Connect(TwoHosts.ServerIp, 9);
        net.Run(TimeSpan.FromMilliseconds(1));

        LoggedSegment syn = net.Log.From(TwoHosts.ClientIp).Single();
        LoggedSegment rst = net.Log.From(TwoHosts.ServerIp).Single();
        Assert.Equal(("R.", 0u, syn.Seq + 1, (ushort)0, 0), (rst.FlagText, rst.Seq, rst.Ack, rst.Header.Window, rst.Header.Options.EncodedLength));
        Assert.Equal("RST: no socket for this segment", rst.Comment);
        Assert.Equal(Errno.ECONNREFUSED, c.Error);
        Assert.Equal(1, net.Server.Counters[Mib.TcpOutRsts]);
        Assert.Equal(1, net.Client.Counters[Mib.TcpAttemptFails]);
    }

    [Theory]
    [InlineData(TcpFlags.Syn | TcpFlags.Fin, "R.", 2u)]          // SYN and FIN each count one
    [InlineData(TcpFlags.None, "R.", 0u)]
    [InlineData(TcpFlags.Fin, "R.", 1u)]
    [InlineData(TcpFlags.Ack, "R", 0u)]                          // with ACK the reset takes seq = ack
    public void Segments_to_a_closed_port_are_reset_as_tcp_v4_send_reset_does(TcpFlags flags, string expected, uint ackOffset)
    {
        var net = new TwoHosts();
        var injector = new Injector(net);
        injector.Send(TwoHosts.ClientIp, TwoHosts.ServerIp, new TcpHeader
        {
            SourcePort = 40000, DestinationPort = 9, SequenceNumber = 1000, AcknowledgmentNumber = 5000, Flags = flags, Window = 100,
        });
        net.Run(TimeSpan.FromMilliseconds(1));

        LoggedSegment rst = net.Log.From(TwoHosts.ServerIp).Single();
        Assert.Equal(expected, rst.FlagText);
        if ((flags & TcpFlags.Ack) != 0) Assert.Equal(5000u, rst.Seq);
        else Assert.Equal(1000u + ackOffset, rst.Ack);
    }

    [Fact]
    public void A_RST_to_a_closed_port_is_never_answered()
    {
        var net = new TwoHosts();
        new Injector(net).Send(TwoHosts.ClientIp, TwoHosts.ServerIp, new TcpHeader { SourcePort = 40000, DestinationPort = 9, Flags = TcpFlags.Rst });
        net.Run(TimeSpan.FromMilliseconds(1));
        Assert.Empty(net.Log.From(TwoHosts.ServerIp));
    }

    [Theory]
    [InlineData(TcpFlags.Syn | TcpFlags.Fin)]
    [InlineData(TcpFlags.None)]
    [InlineData(TcpFlags.Fin)]
    [InlineData(TcpFlags.Rst)]
    public void A_listener_drops_SYN_FIN_NULL_FIN_and_RST_without_answering(TcpFlags flags)
    {
        var net = new TwoHosts();
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        new Injector(net).Send(TwoHosts.ClientIp, TwoHosts.ServerIp, new TcpHeader { SourcePort = 40000, DestinationPort = 80, SequenceNumber = 7, Flags = flags });
        net.Run(TimeSpan.FromMilliseconds(1));

        Assert.Empty(net.Log.From(TwoHosts.ServerIp));
        Assert.Equal(0, listener.SynQueueLength);
        Assert.Equal(1, net.Server.Counters[flags == TcpFlags.Rst ? DropReason.TcpReset : DropReason.TcpFlags]);
    }

    [Fact]
    public void A_stray_ACK_to_a_listener_is_reset()
    {
        var net = new TwoHosts();
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        new Injector(net).Send(TwoHosts.ClientIp, TwoHosts.ServerIp, new TcpHeader { SourcePort = 40000, DestinationPort = 80, AcknowledgmentNumber = 77, Flags = TcpFlags.Ack });
        net.Run(TimeSpan.FromMilliseconds(1));

        var rst = net.Log.From(TwoHosts.ServerIp).Single();
        Assert.Equal(("R", 77u), (rst.FlagText, rst.Seq));
    }

    [Fact]
    public void Crossed_SYNs_give_a_simultaneous_open()
    {
        var net = new TwoHosts();
        var clientStates = new StateLog(net.Client);
        var serverStates = new StateLog(net.Server);
        TcpConnection a = net.Client.Tcp.Connect(TwoHosts.ServerIp, 5000, localPort: 6000);
        TcpConnection b = net.Server.Tcp.Connect(TwoHosts.ClientIp, 6000, localPort: 5000);
        net.Run(TimeSpan.FromSeconds(1));

        Assert.Equal(TcpState.Established, a.State);
        Assert.Equal(TcpState.Established, b.State);
        Assert.Equal("SYN_SENT SYN_RECV ESTABLISHED", clientStates.Path(a.Tuple));
        Assert.Equal("SYN_SENT SYN_RECV ESTABLISHED", serverStates.Path(b.Tuple));
        a.Write("hi"u8);
        net.Run(TimeSpan.FromMilliseconds(10));
        Assert.Equal("hi", System.Text.Encoding.ASCII.GetString(Connected.ReadAll(b)));
    }

    [Fact]
    public void A_new_SYN_with_a_higher_sequence_takes_over_a_TIME_WAIT_tuple_on_the_server()
    {
        // The server closes first, so the server holds TIME_WAIT; the client reconnects from the same port.
        var net = new TwoHosts();
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        TcpConnection first = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, localPort: 40000);
        net.Run(TimeSpan.FromMilliseconds(1));
        TcpConnection server = listener.TryAccept()!;
        server.Close();
        net.Run(TimeSpan.FromMilliseconds(100));
        first.Close();
        net.Run(TimeSpan.FromMilliseconds(100));
        TimeWaitSocket timeWait = Assert.IsType<TimeWaitSocket>(Assert.Single(net.Server.Tcp.Flows));
        Assert.Equal(TcpState.TimeWait, timeWait.State);
        uint oldServerSndNxt = server.SendNext.Value;
        net.RunUntil(5);
        net.Log.Segments.Clear();

        TcpConnection second = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, localPort: 40000);
        net.Run(TimeSpan.FromMilliseconds(10));

        Assert.Equal(TcpState.Established, second.State);
        LoggedSegment synAck = net.Log.From(TwoHosts.ServerIp).First();
        Assert.Equal(unchecked(oldServerSndNxt + 65535 + 2), synAck.Seq);   // tw_snd_nxt + 65535 + 2
        Assert.NotNull(listener.TryAccept());
    }

    [Fact]
    public void A_client_TIME_WAIT_blocks_its_tuple_unless_tcp_tw_reuse_allows_taking_it_over()
    {
        foreach (int reuse in new[] { 2, 1 })
        {
            var net = new TwoHosts(client: s => s.TcpTwReuse = reuse);
            ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
            TcpConnection first = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, localPort: 40000);
            net.Run(TimeSpan.FromMilliseconds(1));
            TcpConnection server = listener.TryAccept()!;
            first.Close();
            net.Run(TimeSpan.FromMilliseconds(100));
            server.Close();
            net.RunUntil(3);   // the client holds TIME_WAIT; more than a second since its last timestamp
            uint oldSndNxt = first.SendNext.Value;

            if (reuse == 2)
            {
                // 2 means loopback only: the lab's addresses are not loopback, so the tuple is busy.
                var error = Assert.Throws<TcpException>(() => net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, localPort: 40000));
                Assert.Equal(Errno.EADDRNOTAVAIL, error.Errno);
                continue;
            }
            net.Log.Segments.Clear();
            TcpConnection second = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80, localPort: 40000);
            net.Run(TimeSpan.FromMilliseconds(10));
            Assert.Equal(unchecked(oldSndNxt + 65535 + 2), net.Log.From(TwoHosts.ClientIp).First().Seq);
            Assert.Equal(TcpState.Established, second.State);
            Assert.Equal(1, net.Client.Counters[Mib.TcpExtTWRecycled]);
        }
    }

    [Fact]
    public void Beyond_tcp_max_tw_buckets_a_closing_connection_skips_TIME_WAIT()
    {
        var net = new TwoHosts(client: s => s.TcpMaxTwBuckets = 1);
        for (ushort port = 80; port < 83; port++)
        {
            var (client, server) = Connected.Open(net, port);
            client.Close();
            net.Run(TimeSpan.FromMilliseconds(100));
            server.Close();
            net.Run(TimeSpan.FromMilliseconds(100));
        }

        Assert.Equal(1, net.Client.Tcp.TimeWaitCount);
        Assert.Equal(2, net.Client.Counters[Mib.TcpExtTCPTimeWaitOverflow]);
    }

    [Fact]
    public void Ephemeral_ports_come_from_ip_local_port_range_and_are_not_reused_while_in_use()
    {
        var net = new TwoHosts(client: s => s.IpLocalPortRange = [50000, 50003]);
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        var ports = Enumerable.Range(0, 4).Select(_ => net.Client.Tcp.Connect(TwoHosts.ServerIp, 80).Tuple.LocalPort).ToList();

        Assert.Equal([50000, 50001, 50002, 50003], ports.Order().Select(p => (int)p));
        Assert.Equal(Errno.EADDRNOTAVAIL, Assert.Throws<TcpException>(() => net.Client.Tcp.Connect(TwoHosts.ServerIp, 80)).Errno);
    }

    [Fact]
    public void ISNs_follow_RFC_6528_distinct_per_tuple_and_advancing_with_the_4us_clock()
    {
        var net = new TwoHosts();
        var a = new FourTuple(TwoHosts.ClientIp, 1000, TwoHosts.ServerIp, 80);
        var b = a with { LocalPort = 1001 };
        SeqNum a0 = net.Client.Tcp.NewIsn(a), b0 = net.Client.Tcp.NewIsn(b);
        net.RunUntil(1);
        SeqNum a1 = net.Client.Tcp.NewIsn(a);

        Assert.NotEqual(a0, b0);
        Assert.Equal(250_000, a1 - a0);   // one second of a 4 µs clock
    }

    [Fact]
    public void Sysctl_values_are_validated_with_the_key_and_the_range_in_the_message()
    {
        var sysctls = new Sysctls();
        SysctlRegistry.Set(sysctls, "net.ipv4.tcp_syn_retries", "3");
        Assert.Equal(3, sysctls.TcpSynRetries);
        Assert.Equal("net.ipv4.tcp_syn_retries: 300 is out of range 1..127",
                     Assert.Throws<SysctlException>(() => SysctlRegistry.Set(sysctls, "net.ipv4.tcp_syn_retries", "300")).Message);
        Assert.Equal("net.ipv4.tcp_keepalive_time: 'soon' is not an integer",
                     Assert.Throws<SysctlException>(() => SysctlRegistry.Set(sysctls, "net.ipv4.tcp_keepalive_time", "soon")).Message);
        Assert.Contains("did you mean 'net.ipv4.tcp_syn_retries'",
                        Assert.Throws<SysctlException>(() => SysctlRegistry.Set(sysctls, "tcp_syn_retries", "3")).Message);
        Assert.Throws<SysctlException>(() => SysctlRegistry.Set(sysctls, "net.ipv4.ip_local_port_range", "5000 4000"));
        Assert.Equal("32768\t60999", SysctlRegistry.Get(sysctls, "net.ipv4.ip_local_port_range"));
        Assert.Equal("7200", SysctlRegistry.Get(sysctls, "net.ipv4.tcp_keepalive_time"));
        Assert.Equal("200000", SysctlRegistry.Get(sysctls, "net.ipv4.tcp_rto_min_us"));
    }
}
