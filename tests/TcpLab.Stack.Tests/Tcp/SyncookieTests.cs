using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>Syncookies as net/ipv4/syncookies.c makes and checks them, alone and in handshakes.</summary>
public class SyncookieTests
{
    private static readonly FourTuple Tuple = new(Ipv4Address.Parse("10.0.0.2"), 80, Ipv4Address.Parse("10.0.0.1"), 40000);

    private static Syncookies NewCodec(ulong seed = 1) => new TwoHosts(seed).Server.Tcp.Syncookies;

    [Theory]
    [InlineData(100, 536)]
    [InlineData(536, 536)]
    [InlineData(1299, 536)]
    [InlineData(1300, 1300)]
    [InlineData(1439, 1300)]
    [InlineData(1440, 1440)]
    [InlineData(1452, 1440)]
    [InlineData(1460, 1460)]
    [InlineData(8960, 1460)]
    public void A_cookie_carries_the_MSS_rounded_down_to_the_table(int offered, int expected)
    {
        Syncookies cookies = NewCodec();
        ushort mss = (ushort)offered;
        var clientIsn = new SeqNum(123456789);
        SeqNum cookie = cookies.Make(Tuple, clientIsn, ref mss, Instant.FromSeconds(10));

        Assert.Equal(expected, mss);
        // The ACK acknowledges cookie + 1 and carries client ISN + 1.
        Assert.Equal(expected, cookies.Check(Tuple, cookie + 1, clientIsn + 1, Instant.FromSeconds(11)));
    }

    [Fact]
    public void The_MSS_table_is_Linuxs()
    {
        Assert.Equal([536, 1300, 1440, 1460], Syncookies.MssTable.ToArray());
    }

    [Theory]
    [InlineData(0.5, 119.999, true)]
    [InlineData(0.5, 120.0, false)]     // made in minute 0, checked in minute 2
    [InlineData(59.9, 119.9, true)]
    [InlineData(59.9, 120.0, false)]    // only 60.1 s later, but the counter moved by 2
    [InlineData(60.0, 179.9, true)]
    public void A_cookie_is_good_while_the_minute_counter_has_moved_by_less_than_two(double made, double checkedAt, bool valid)
    {
        Syncookies cookies = NewCodec();
        ushort mss = 1460;
        SeqNum cookie = cookies.Make(Tuple, new SeqNum(5), ref mss, Instant.FromSeconds(made));
        Assert.Equal(valid ? 1460 : 0, cookies.Check(Tuple, cookie + 1, new SeqNum(6), Instant.FromSeconds(checkedAt)));
    }

    [Fact]
    public void A_cookie_is_bound_to_the_addresses_ports_client_ISN_and_secret()
    {
        Syncookies cookies = NewCodec();
        ushort mss = 1460;
        var now = Instant.FromSeconds(1);
        SeqNum cookie = cookies.Make(Tuple, new SeqNum(5), ref mss, now);

        // The ISNs enter the cookie by addition (as in Linux): a shift of a few units only moves
        // the MSS index, a larger one leaves the 4-entry table.
        Assert.Equal(1440, cookies.Check(Tuple, cookie + 1, new SeqNum(7), now));
        Assert.Equal(0, cookies.Check(Tuple, cookie + 1 + 0x10000, new SeqNum(6), now));
        Assert.Equal(0, cookies.Check(Tuple, cookie + 1, new SeqNum(6 + 0x10000), now));
        Assert.Equal(0, cookies.Check(Tuple with { RemotePort = 40001 }, cookie + 1, new SeqNum(6), now));
        Assert.Equal(0, NewCodec(seed: 2).Check(Tuple, cookie + 1, new SeqNum(6), now));
    }

    [Theory]
    [InlineData(true, 7, true)]
    [InlineData(true, 14, false)]
    [InlineData(false, 0, true)]
    [InlineData(false, 0, false)]
    public void The_SYNs_options_ride_in_the_low_six_bits_of_TSval_never_ahead_of_the_clock(bool windowScaleOk, byte scale, bool sackOk)
    {
        foreach (uint clock in new uint[] { 0x1000_0040, 0x1000_0041, 0x1000_007F, 12345 })
        {
            uint ts = Syncookies.EncodeTimestamp(clock, windowScaleOk, scale, sackOk);
            Assert.True(ts <= clock && clock - ts < 64, $"{ts:x} for clock {clock:x}");
            Assert.True(Syncookies.DecodeTimestamp(ts, sackEnabled: true, windowScalingEnabled: true, out bool sack, out bool wsOk, out byte ws));
            Assert.Equal((sackOk, windowScaleOk, windowScaleOk ? scale : (byte)0), (sack, wsOk, ws));
        }
    }

    [Fact]
    public void Options_this_host_switched_off_make_the_cookie_unusable()
    {
        uint ts = Syncookies.EncodeTimestamp(1000, windowScaleOk: true, peerWindowScale: 7, sackOk: true);
        Assert.False(Syncookies.DecodeTimestamp(ts, sackEnabled: false, windowScalingEnabled: true, out _, out _, out _));
        Assert.False(Syncookies.DecodeTimestamp(ts, sackEnabled: true, windowScalingEnabled: false, out _, out _, out _));
    }

    // ----- In handshakes (tcp_syncookies=2 sends a cookie for every SYN) -----

    private static TwoHosts AlwaysCookies(Action<Settings.Sysctls>? client = null, Func<ILink, ILink>? clientLink = null) =>
        new(server: s => s.TcpSyncookies = 2, client: client, clientLink: clientLink);

    [Fact]
    public void A_cookie_handshake_keeps_no_state_until_the_ACK_and_restores_window_scale_SACK_and_timestamps()
    {
        var net = AlwaysCookies();
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        TcpConnection client = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.Run(TimeSpan.FromMilliseconds(1));

        LoggedSegment synAck = Assert.Single(net.Log.From(TwoHosts.ServerIp));
        Assert.Equal("SYN-ACK with a syncookie, MSS 1460 encoded (no state kept, never retransmitted)", synAck.Comment);
        Assert.Equal("mss 1460,sackOK,TS val " + synAck.Header.Options.TsVal + " ecr " + synAck.Header.Options.TsEcr + ",wscale " + synAck.Header.Options.WindowScale,
                     synAck.Header.Options.ToString());
        TcpConnection server = listener.TryAccept()!;
        Assert.Equal(TcpState.Established, server.State);
        Assert.Equal((client.ReceiveWindowScale, client.SackOk, true), (server.SendWindowScale, server.SackOk, server.TimestampsOk));
        Assert.Equal(client.SendWindowScale, server.ReceiveWindowScale);
        Assert.Equal((1, 1, 0), (net.Server.Counters[Mib.TcpExtSyncookiesSent], net.Server.Counters[Mib.TcpExtSyncookiesRecv], net.Server.Counters[Mib.TcpExtSyncookiesFailed]));
        Assert.Equal(1, net.Server.Counters[Mib.TcpPassiveOpens]);

        byte[] data = [1, 2, 3, 4, 5];
        client.Write(data);
        net.Run(TimeSpan.FromMilliseconds(1));
        Assert.Equal(data, Connected.ReadAll(server));
    }

    [Fact]
    public void Without_timestamps_the_cookie_SYN_ACK_offers_only_an_MSS()
    {
        var net = AlwaysCookies(client: s => s.TcpTimestamps = 0);
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        TcpConnection client = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.Run(TimeSpan.FromMilliseconds(1));

        LoggedSegment synAck = Assert.Single(net.Log.From(TwoHosts.ServerIp));
        Assert.Equal("mss 1460", synAck.Header.Options.ToString());
        TcpConnection server = listener.TryAccept()!;
        Assert.Equal((false, false, (byte)0, (byte)0), (server.SackOk, server.TimestampsOk, server.SendWindowScale, server.ReceiveWindowScale));
        Assert.Equal((false, (byte)0), (client.SackOk, client.SendWindowScale));
    }

    /// <summary>Cookies for every SYN, and every pure ACK from the client is lost (the handshake's last one too).</summary>
    private static (TwoHosts Net, ListenSocket Listener, TcpConnection Client) CookieHandshakeWithoutFinalAck()
    {
        var net = AlwaysCookies(clientLink: link => new FilterLink(link) { DropOutgoing = f => f.Is(TcpFlags.Ack) && f.PayloadLength == 0 });
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        return (net, listener, net.Client.Tcp.Connect(TwoHosts.ServerIp, 80));
    }

    [Fact]
    public void A_lost_final_ACK_is_not_repaired_by_the_server_but_the_clients_data_carries_the_cookie_again()
    {
        var (net, listener, client) = CookieHandshakeWithoutFinalAck();
        net.RunUntil(90);

        Assert.Single(net.Log.From(TwoHosts.ServerIp));   // no SYN-ACK retransmission: nothing was kept
        Assert.Equal(TcpState.Established, client.State);
        Assert.Equal(0, listener.AcceptQueueLength);

        client.Write([42]);
        net.RunUntil(91);
        TcpConnection server = listener.TryAccept()!;
        Assert.Equal([42], Connected.ReadAll(server));
        Assert.Equal(1, net.Server.Counters[Mib.TcpExtSyncookiesRecv]);
    }

    [Fact]
    public void An_expired_cookie_fails_and_the_clients_data_is_reset()
    {
        var (net, listener, late) = CookieHandshakeWithoutFinalAck();
        net.RunUntil(125);
        // Another SYN keeps cookies "recent" (tcp_synq_no_recent_overflow) so the old one is checked at all.
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.RunUntil(126);

        late.Write([42]);
        net.RunUntil(127);

        Assert.Equal(Errno.ECONNRESET, late.Error);
        Assert.Equal(1, net.Server.Counters[Mib.TcpExtSyncookiesFailed]);
        Assert.Equal(0, listener.AcceptQueueLength);
    }

    [Fact]
    public void A_forged_ACK_counts_as_SyncookiesFailed_and_is_reset_while_cookies_are_in_use()
    {
        var net = AlwaysCookies();
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.Run(TimeSpan.FromMilliseconds(1));
        new Injector(net).Send(TwoHosts.ClientIp, TwoHosts.ServerIp,
                               new TcpHeader { SourcePort = 40000, DestinationPort = 80, SequenceNumber = 1, AcknowledgmentNumber = 77, Flags = TcpFlags.Ack });
        net.Run(TimeSpan.FromMilliseconds(1));

        Assert.Equal(1, net.Server.Counters[Mib.TcpExtSyncookiesFailed]);
        Assert.Equal(("R", 77u), net.Log.From(TwoHosts.ServerIp).Where(s => s.Header.DestinationPort == 40000).Select(s => (s.FlagText, s.Seq)).Single());
    }

    [Fact]
    public void Without_recent_cookies_a_stray_ACK_is_reset_without_a_cookie_check()
    {
        var net = new TwoHosts();
        net.Server.Tcp.Listen(Ipv4Address.Any, 80, 16);
        new Injector(net).Send(TwoHosts.ClientIp, TwoHosts.ServerIp,
                               new TcpHeader { SourcePort = 40000, DestinationPort = 80, AcknowledgmentNumber = 77, Flags = TcpFlags.Ack });
        net.Run(TimeSpan.FromMilliseconds(1));

        Assert.Equal(0, net.Server.Counters[Mib.TcpExtSyncookiesFailed]);
        Assert.Single(net.Log.From(TwoHosts.ServerIp), s => s.FlagText == "R");
    }

    [Fact]
    public void A_valid_cookie_ACK_that_finds_the_accept_queue_full_is_dropped_silently_even_with_abort_on_overflow()
    {
        var net = new TwoHosts(server: s => { s.TcpSyncookies = 2; s.TcpAbortOnOverflow = true; });
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, 0);
        TcpConnection first = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        TcpConnection second = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);
        net.Run(TimeSpan.FromMilliseconds(1));

        // Both SYNs found room (the accept queue was empty) and got cookies; only one ACK fits.
        Assert.Equal((TcpState.Established, TcpState.Established), (first.State, second.State));
        Assert.Equal(1, listener.AcceptQueueLength);
        Assert.Equal(2, net.Server.Counters[Mib.TcpExtSyncookiesRecv]);
        Assert.Equal(1, net.Server.Counters[Mib.TcpExtListenOverflows]);
        Assert.Equal(0, net.Server.Counters[Mib.TcpOutRsts]);
    }
}
