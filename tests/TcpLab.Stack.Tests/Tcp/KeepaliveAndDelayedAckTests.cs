using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

public class KeepaliveTests
{
    /// <summary>Connects with SO_KEEPALIVE, then from t=1 s the server's TCP hears nothing (it vanished).</summary>
    private static (TwoHosts Net, TcpConnection Client, StateLog States, uint SndUna) SilentPeer(TcpSocketOptions options)
    {
        bool cut = false;
        var net = new TwoHosts(serverLink: link => new FilterLink(link) { DropIncoming = v => cut && v.IsTcp });
        var states = new StateLog(net.Client);
        var (client, _) = Connected.Open(net, clientOptions: options);
        net.RunUntil(1);
        cut = true;
        uint sndUna = net.Log.From(TwoHosts.ClientIp).Last().Seq;   // the idle client's snd_una == snd_nxt
        net.Log.Segments.Clear();
        return (net, client, states, sndUna);
    }

    [Fact]
    public void Default_keepalive_probes_at_7200s_then_every_75s_and_gives_up_with_RST_at_7875s()
    {
        var (net, client, states, sndUna) = SilentPeer(new TcpSocketOptions { KeepAlive = true });

        net.RunUntil(9000);

        var probes = net.Log.From(TwoHosts.ClientIp).Where(s => s.Comment.StartsWith("keepalive probe", StringComparison.Ordinal)).ToList();
        // The idle clock runs from the last segment received, the end of the handshake at t=0.
        Assert.Equal(Enumerable.Range(0, 9).Select(k => 7200.0 + 75 * k), probes.Select(p => Math.Round(p.At.TotalSeconds, 3)));
        Assert.Equal("keepalive probe 1/9", probes[0].Comment);
        Assert.All(probes, p => Assert.Equal((0, sndUna - 1), (p.Length, p.Seq)));   // seq snd_una - 1, no data
        LoggedSegment rst = net.Log.From(TwoHosts.ClientIp).Last();
        Assert.Equal(("R.", 7875.0), (rst.FlagText, Math.Round(rst.At.TotalSeconds, 3)));
        Assert.Equal(Errno.ETIMEDOUT, client.Error);
        Assert.Equal(7875.0, Math.Round(states.When(client.Tuple, TcpState.Closed), 3));
        Assert.Equal(9, net.Client.Counters[Mib.TcpExtTCPKeepAlive]);
    }

    [Fact]
    public void Per_socket_TCP_KEEPIDLE_KEEPINTVL_KEEPCNT_override_the_sysctls()
    {
        var (net, client, states, _) = SilentPeer(new TcpSocketOptions
        {
            KeepAlive = true, KeepIdle = TimeSpan.FromSeconds(10), KeepInterval = TimeSpan.FromSeconds(5), KeepCount = 3,
        });

        net.RunUntil(100);

        var probes = net.Log.From(TwoHosts.ClientIp).Where(s => s.Comment.StartsWith("keepalive probe", StringComparison.Ordinal));
        Assert.Equal([10.0, 15.0, 20.0], probes.Select(p => Math.Round(p.At.TotalSeconds, 3)));
        Assert.Equal(25.0, Math.Round(states.When(client.Tuple, TcpState.Closed), 3));
        Assert.Equal(Errno.ETIMEDOUT, client.Error);
    }

    [Fact]
    public void An_answered_probe_keeps_the_connection_and_restarts_the_idle_clock()
    {
        var net = new TwoHosts();
        var (client, server) = Connected.Open(net, clientOptions: new TcpSocketOptions
        {
            KeepAlive = true, KeepIdle = TimeSpan.FromSeconds(10), KeepInterval = TimeSpan.FromSeconds(5), KeepCount = 3,
        });

        net.RunUntil(35);

        var probes = net.Log.From(TwoHosts.ClientIp).Where(s => s.Comment.StartsWith("keepalive probe", StringComparison.Ordinal));
        Assert.Equal([10.0, 20.0, 30.0], probes.Select(p => Math.Round(p.At.TotalSeconds, 3)));
        Assert.All(probes, p => Assert.Equal("keepalive probe 1/3", p.Comment));
        Assert.Equal(TcpState.Established, client.State);
        Assert.Equal(3, net.Log.From(TwoHosts.ServerIp).Count(s => s.At.TotalSeconds >= 10 && s.FlagText == "."));
    }

    [Fact]
    public void A_peer_that_lost_the_connection_answers_the_probe_with_RST_and_the_client_gets_ECONNRESET()
    {
        // The server forgets the connection without telling the client (its RST is lost).
        bool dropServerRst = true;
        var net = new TwoHosts(clientLink: link => new FilterLink(link) { DropIncoming = v => dropServerRst && v.Has(TcpFlags.Rst) });
        var (client, server) = Connected.Open(net, clientOptions: new TcpSocketOptions { KeepAlive = true, KeepIdle = TimeSpan.FromSeconds(10) });
        server.Abort();
        net.RunUntil(1);
        dropServerRst = false;

        net.RunUntil(20);

        Assert.Equal(Errno.ECONNRESET, client.Error);
        Assert.Equal(TcpState.Closed, client.State);
        Assert.Single(net.Log.From(TwoHosts.ClientIp), s => s.Comment.StartsWith("keepalive probe", StringComparison.Ordinal));
    }
}

public class DelayedAckTests
{
    [Fact]
    public void The_first_data_is_acknowledged_at_once_then_ACKs_wait_40ms()
    {
        var net = new TwoHosts();
        var (client, server) = Connected.Open(net);
        var ackDelays = new List<double>();
        // One small write every 100 ms: closer together than the RTO, so the receiver does not
        // fall back to quick ACKs (tcp_event_data_recv does after a gap longer than the RTO).
        for (int i = 0; i < 30; i++)
        {
            net.RunUntil(1 + 0.1 * i);
            client.Write("x"u8);
            double sent = net.Loop.Now.TotalSeconds;
            net.RunUntil(1.09 + 0.1 * i);
            Connected.ReadAll(server);
            LoggedSegment ack = net.Log.From(TwoHosts.ServerIp).Last();
            ackDelays.Add(Math.Round(ack.At.TotalSeconds - sent, 6));
        }

        // Quick-ACK mode at the start: min(rcv_wnd / (2 * rcv_mss), 16) = 16 immediate ACKs
        // (tcp_incr_quickack), then the delayed-ACK timer: TCP_ATO_MIN, 40 ms.
        Assert.Equal(Enumerable.Repeat(0.0, 16), ackDelays.Take(16));
        Assert.All(ackDelays.Skip(16), d => Assert.Equal(0.04, d, 6));
        Assert.Equal(14, net.Server.Counters[Mib.TcpExtDelayedACKs]);
    }

    [Fact]
    public void Two_full_segments_are_acknowledged_at_once()
    {
        var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(1) });
        var (client, server) = Connected.Open(net);
        // Exhaust quick-ACK mode first with full-sized writes 100 ms apart (below the RTO). While
        // they make rcv_ssthresh grow, tcp_grow_window keeps quick-ACK mode alive (quick |= 1);
        // once it reached the window clamp, each ACK uses up one of the 16 quick ACKs.
        for (int i = 0; i < 30; i++)
        {
            client.Write(new byte[client.SendMss]);
            net.Run(TimeSpan.FromMilliseconds(100));
            Connected.ReadAll(server);
        }
        net.Log.Segments.Clear();
        server.Observer = new ReadEverything();   // an application reading as data arrives (tcp_cleanup_rbuf ACKs)
        client.Write(new byte[2 * client.SendMss]);
        net.Run(TimeSpan.FromMilliseconds(100));

        var data = net.Log.From(TwoHosts.ClientIp).Where(s => s.Length > 0).ToList();
        var ack = net.Log.From(TwoHosts.ServerIp).First();
        Assert.Equal(2, data.Count);
        Assert.Equal(data[1].At + TimeSpan.FromMilliseconds(1), ack.At);   // arrival of the 2nd segment
        Assert.Equal(data[1].Seq + (uint)data[1].Length, ack.Ack);
    }

    [Fact]
    public void A_reply_sent_within_the_delay_carries_the_ACK_so_no_pure_ACK_is_sent()
    {
        var net = new TwoHosts();
        var (client, server) = Connected.Open(net);
        for (int i = 0; i < 20; i++)   // leave quick-ACK mode and become interactive
        {
            net.RunUntil(1 + i);
            client.Write("request"u8);
            net.Run(TimeSpan.FromMilliseconds(10));
            Connected.ReadAll(server);
            server.Write("response"u8);   // answered within ato: the ACK rides on the response
            net.Run(TimeSpan.FromMilliseconds(10));
            Connected.ReadAll(client);
        }

        var late = net.Log.From(TwoHosts.ServerIp).Where(s => s.At.TotalSeconds > 10).ToList();
        Assert.All(late, s => Assert.Equal("P.", s.FlagText));
    }
}

/// <summary>An application that reads whatever arrives, at once.</summary>
internal sealed class ReadEverything : ITcpConnectionObserver
{
    public void OnReadable(TcpConnection connection) => Connected.ReadAll(connection);
    public void OnStateChanged(TcpConnection connection, TcpState from, TcpState to) { }
    public void OnWritable(TcpConnection connection) { }
    public void OnClosed(TcpConnection connection) { }
}

public class Rfc5961Tests
{
    private readonly TwoHosts _net = new();
    private readonly Injector _attacker;
    private readonly TcpConnection _client;
    private readonly TcpConnection _server;

    public Rfc5961Tests()
    {
        _attacker = new Injector(_net);
        (_client, _server) = Connected.Open(_net);
        _net.RunUntil(1);
        _net.Log.Segments.Clear();
    }

    /// <summary>A segment that looks as if the server sent it, at <paramref name="seqOffset"/> from the client's rcv_nxt.</summary>
    private void FromServer(TcpFlags flags, int seqOffset, uint? ack = null)
    {
        var header = new TcpHeader
        {
            SourcePort = _server.Tuple.LocalPort,
            DestinationPort = _client.Tuple.LocalPort,
            SequenceNumber = unchecked(_server.SendNext.Value + (uint)seqOffset),
            AcknowledgmentNumber = ack ?? _client.SendNext.Value,
            Flags = flags,
            Window = 502,
        };
        _attacker.Send(TwoHosts.ServerIp, TwoHosts.ClientIp, header);
        _net.Run(TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public void A_RST_with_the_exact_sequence_number_resets_the_connection()
    {
        FromServer(TcpFlags.Rst, 0);
        Assert.Equal(Errno.ECONNRESET, _client.Error);
    }

    [Fact]
    public void An_in_window_RST_that_is_not_exact_gets_a_challenge_ACK_and_changes_nothing()
    {
        FromServer(TcpFlags.Rst, 1000);

        Assert.Equal(TcpState.Established, _client.State);
        var challenge = Assert.Single(_net.Log.From(TwoHosts.ClientIp));
        Assert.Equal(("challenge ACK (RFC 5961)", "."), (challenge.Comment, challenge.FlagText));
        Assert.Equal(1, _net.Client.Counters[Mib.TcpExtTCPChallengeACK]);
    }

    [Fact]
    public void A_RST_outside_the_window_is_ignored_silently()
    {
        FromServer(TcpFlags.Rst, 10_000_000);

        Assert.Equal(TcpState.Established, _client.State);
        Assert.Empty(_net.Log.From(TwoHosts.ClientIp));
    }

    [Fact]
    public void A_SYN_on_an_established_connection_gets_a_challenge_ACK()
    {
        FromServer(TcpFlags.Syn, 5);

        Assert.Equal(TcpState.Established, _client.State);
        Assert.Equal("challenge ACK (RFC 5961)", Assert.Single(_net.Log.From(TwoHosts.ClientIp)).Comment);
        Assert.Equal(1, _net.Client.Counters[Mib.TcpExtTCPSYNChallenge]);
    }

    [Fact]
    public void Challenge_ACKs_are_rate_limited_per_connection_to_one_per_500ms()
    {
        for (int i = 0; i < 5; i++) FromServer(TcpFlags.Rst, 1000 + i);
        Assert.Single(_net.Log.From(TwoHosts.ClientIp));
        _net.Run(TimeSpan.FromMilliseconds(500));
        FromServer(TcpFlags.Rst, 2000);
        Assert.Equal(2, _net.Log.From(TwoHosts.ClientIp).Count());
        Assert.Equal(4, _net.Client.Counters[Mib.TcpExtTCPACKSkippedChallenge]);
    }

    [Fact]
    public void The_host_wide_challenge_ACK_limit_applies_across_connections()
    {
        var net = new TwoHosts(client: s => s.TcpChallengeAckLimit = 2);
        var attacker = new Injector(net);
        var connections = Enumerable.Range(0, 6).Select(i => Connected.Open(net, (ushort)(1000 + i))).ToList();
        net.RunUntil(1.2);
        net.Log.Segments.Clear();
        foreach (var (client, server) in connections)
        {
            attacker.Send(TwoHosts.ServerIp, TwoHosts.ClientIp, new TcpHeader
            {
                SourcePort = server.Tuple.LocalPort, DestinationPort = client.Tuple.LocalPort,
                SequenceNumber = unchecked(server.SendNext.Value + 1000), Flags = TcpFlags.Rst,
            });
        }
        net.Run(TimeSpan.FromMilliseconds(1));

        // tcp_challenge_ack_limit=2 allows between 1 and 2 challenge ACKs in one second (randomised quota).
        Assert.InRange(net.Log.From(TwoHosts.ClientIp).Count(), 1, 2);
    }

    [Theory]
    [InlineData(TcpFlags.None)]
    [InlineData(TcpFlags.Fin)]
    [InlineData(TcpFlags.Fin | TcpFlags.Psh | TcpFlags.Urg)]
    public void Segments_without_ACK_RST_or_SYN_are_dropped_and_counted(TcpFlags flags)
    {
        FromServer(flags, 0);

        Assert.Equal(TcpState.Established, _client.State);
        Assert.Empty(_net.Log.From(TwoHosts.ClientIp));
        Assert.Equal(1, _net.Client.Counters[DropReason.TcpFlags]);
    }

    [Fact]
    public void SYN_with_FIN_on_an_established_connection_is_challenged_not_obeyed()
    {
        FromServer(TcpFlags.Syn | TcpFlags.Fin, 0);

        Assert.Equal(TcpState.Established, _client.State);
        Assert.Equal("challenge ACK (RFC 5961)", Assert.Single(_net.Log.From(TwoHosts.ClientIp)).Comment);
        Assert.Equal(1, _net.Client.Counters[DropReason.TcpInvalidSyn]);
        Assert.Equal(0, _net.Client.Counters[DropReason.TcpFlags]);
    }
}
