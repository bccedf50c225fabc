using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>Every close order, TIME_WAIT, FIN_WAIT_2 and SO_LINGER, with the states each side passes through.</summary>
public class CloseTests
{
    private readonly TwoHosts _net = new();
    private readonly StateLog _clientStates;
    private readonly StateLog _serverStates;

    public CloseTests()
    {
        _clientStates = new StateLog(_net.Client);
        _serverStates = new StateLog(_net.Server);
    }

    private string Flags(Ipv4Address from) => string.Join(" ", _net.Log.From(from).Select(s => s.FlagText));

    [Fact]
    public void Client_closes_first_while_the_server_still_sends_four_way_close()
    {
        var (client, server) = Connected.Open(_net);
        _net.Log.Segments.Clear();
        client.Close();
        _net.Run(TimeSpan.FromMilliseconds(100));   // server ACKs the FIN (delayed), is CLOSE_WAIT
        server.Write("late data"u8);                // the client has closed: it answers with RST
        _net.Run(TimeSpan.FromMilliseconds(10));

        // The orphaned FIN_WAIT_2 answers data after close() with RST (RFC 1122) and is gone.
        Assert.Equal("SYN_SENT ESTABLISHED FIN_WAIT1 FIN_WAIT2 CLOSED", _clientStates.Path(client.Tuple));
        Assert.Equal("R", _net.Log.From(TwoHosts.ClientIp).Last().FlagText);
        Assert.Equal(Errno.EPIPE, server.Error);   // tcp_reset: a reset in CLOSE_WAIT reads as EPIPE
        Assert.Empty(_net.Client.Tcp.Flows);
    }

    [Fact]
    public void Four_way_close_with_data_in_between_goes_through_every_state()
    {
        var (client, server) = Connected.Open(_net);
        _net.Log.Segments.Clear();
        client.ShutdownSend();                       // FIN, but the client keeps reading
        _net.Run(TimeSpan.FromMilliseconds(100));
        server.Write("remaining"u8);                 // CLOSE_WAIT can still send
        _net.Run(TimeSpan.FromMilliseconds(100));
        Assert.Equal("remaining", System.Text.Encoding.ASCII.GetString(Connected.ReadAll(client)));
        Assert.Equal(0, server.Read(new byte[8]));   // EOF
        server.Close();
        _net.Run(TimeSpan.FromMilliseconds(100));
        client.Close();

        Assert.Equal("SYN_SENT ESTABLISHED FIN_WAIT1 FIN_WAIT2 TIME_WAIT", _clientStates.Path(client.Tuple));
        Assert.Equal("SYN_RECV ESTABLISHED CLOSE_WAIT LAST_ACK CLOSED", _serverStates.Path(server.Tuple));
        Assert.Equal(["F.", "."], _net.Log.From(TwoHosts.ClientIp).Take(2).Select(s => s.FlagText)); // FIN, then ACK of the data
        Assert.Equal(["P.", "F."], _net.Log.From(TwoHosts.ServerIp).Where(s => s.FlagText != ".").Select(s => s.FlagText));
    }

    [Fact]
    public void A_server_with_nothing_left_merges_its_ACK_and_FIN_three_way_close()
    {
        var (client, server) = Connected.Open(_net);
        client.Write("x"u8);
        _net.Run(TimeSpan.FromMilliseconds(100));
        Connected.ReadAll(server);
        _net.Log.Segments.Clear();
        server.Observer = new CloseOnEof(server);    // the application closes as soon as it reads EOF
        client.Close();
        _net.Run(TimeSpan.FromSeconds(1));

        Assert.Equal(["F.", "F.", "."], _net.Log.Segments.Select(s => s.FlagText));
        Assert.Equal(TwoHosts.ServerIp, _net.Log.Segments[1].Source);
        Assert.Equal("SYN_RECV ESTABLISHED CLOSE_WAIT LAST_ACK CLOSED", _serverStates.Path(server.Tuple));
        // Linux processes the ACK before the FIN of one [F.], so FIN_WAIT_2 lasts no time at all.
        Assert.Equal("SYN_SENT ESTABLISHED FIN_WAIT1 FIN_WAIT2 TIME_WAIT", _clientStates.Path(client.Tuple));
        Assert.Equal(_clientStates.When(client.Tuple, TcpState.FinWait2), _clientStates.When(client.Tuple, TcpState.TimeWait));
    }

    [Fact]
    public void Server_closes_first_while_the_client_waits_in_recv()
    {
        var (client, server) = Connected.Open(_net);
        server.Close();
        _net.Run(TimeSpan.FromSeconds(1));

        Assert.Equal(TcpState.CloseWait, client.State);
        Assert.Equal(TcpState.FinWait2, FlowState(_net.Server, server.Tuple));
        Assert.True(client.EndOfStream);
        Assert.Equal(0, client.Read(new byte[8]));
    }

    [Fact]
    public void An_orphaned_FIN_WAIT_2_disappears_after_tcp_fin_timeout_while_the_peer_stays_in_CLOSE_WAIT()
    {
        var (client, server) = Connected.Open(_net);
        _net.RunUntil(1);
        client.Close();
        _net.RunUntil(2);
        // The ACK of a FIN with ato 0 waits only for the next 4 ms tick (tcp_send_delayed_ack: jiffies + 0).
        Assert.Equal(1.004, _clientStates.When(client.Tuple, TcpState.FinWait2), 6);
        _net.Log.Segments.Clear();

        _net.RunUntil(200);

        Assert.Equal(61.004, _clientStates.When(client.Tuple, TcpState.Closed), 6);   // tcp_fin_timeout from entering FIN_WAIT2
        Assert.Empty(_net.Log.From(TwoHosts.ClientIp));     // it goes silently
        Assert.Equal(TcpState.CloseWait, server.State);
    }

    [Fact]
    public void TIME_WAIT_lasts_60s_and_a_retransmitted_FIN_is_re_ACKed_and_restarts_it()
    {
        // The client's ACK of the server's FIN is lost once, so the server retransmits its FIN.
        bool serverClosed = false, dropped = false;
        var net = new TwoHosts(serverLink: link => new FilterLink(link)
        {
            DropIncoming = v => serverClosed && !dropped && v.Is(TcpFlags.Ack) && (dropped = true),
        });
        var states = new StateLog(net.Client);
        var (client, server) = Connected.Open(net);
        net.RunUntil(1);
        client.Close();
        net.RunUntil(2);
        serverClosed = true;
        server.Close();                              // FIN at 2 s; the client's ACK is lost
        net.RunUntil(300);

        Assert.Equal(2.0, states.When(client.Tuple, TcpState.TimeWait), 6);
        // With SACK on, the lone FIN in flight is repeated by a tail loss probe before its RTO would fire.
        LoggedSegment finRetransmit = net.Log.From(TwoHosts.ServerIp).Where(s => (s.Flags & TcpFlags.Fin) != 0).Skip(1).Single();
        Assert.StartsWith("tail loss probe: retransmit of the last segment", finRetransmit.Comment);
        LoggedSegment reAck = net.Log.From(TwoHosts.ClientIp).Single(s => s.Comment.StartsWith("TIME_WAIT: re-ACK", StringComparison.Ordinal));
        Assert.Equal(finRetransmit.At, reAck.At);
        // TIME_WAIT is restarted from the re-ACK, so it ends 60 s after it rather than at 62 s.
        Assert.Equal(reAck.At.TotalSeconds + 60, states.When(client.Tuple, TcpState.Closed), 2);
        Assert.True(reAck.At.TotalSeconds > 2.1);
        Assert.Equal(TcpState.Closed, server.State);
    }

    [Fact]
    public void SO_LINGER_zero_sends_RST_and_skips_TIME_WAIT()
    {
        var (client, server) = Connected.Open(_net, clientOptions: new TcpSocketOptions { Linger = TimeSpan.Zero });
        _net.Log.Segments.Clear();
        client.Close();
        _net.Run(TimeSpan.FromMilliseconds(10));

        var rst = Assert.Single(_net.Log.Segments);
        Assert.Equal("R.", rst.FlagText);
        Assert.Equal("RST: close() with SO_LINGER timeout 0", rst.Comment);
        Assert.Equal("SYN_SENT ESTABLISHED CLOSED", _clientStates.Path(client.Tuple));
        Assert.Equal(Errno.ECONNRESET, server.Error);
        Assert.Equal(TcpState.Closed, server.State);
        Assert.Empty(_net.Client.Tcp.Flows);
    }

    [Fact]
    public void Closing_with_unread_data_resets_the_connection()
    {
        var (client, server) = Connected.Open(_net);
        server.Write("unread"u8);
        _net.Run(TimeSpan.FromMilliseconds(10));
        _net.Log.Segments.Clear();
        client.Close();
        _net.Run(TimeSpan.FromMilliseconds(10));

        Assert.Equal("R.", Assert.Single(_net.Log.Segments).FlagText);
        Assert.Equal(1, _net.Client.Counters[Mib.TcpExtTCPAbortOnClose]);
        Assert.Equal(Errno.ECONNRESET, server.Error);
    }

    [Fact]
    public void Simultaneous_close_passes_through_CLOSING_on_both_sides()
    {
        var (client, server) = Connected.Open(_net);
        client.Close();
        server.Close();
        _net.Run(TimeSpan.FromSeconds(1));

        Assert.Equal("SYN_SENT ESTABLISHED FIN_WAIT1 CLOSING TIME_WAIT", _clientStates.Path(client.Tuple));
        Assert.Equal("SYN_RECV ESTABLISHED FIN_WAIT1 CLOSING TIME_WAIT", _serverStates.Path(server.Tuple));
    }

    private static TcpState FlowState(NetworkStack stack, FourTuple tuple) => stack.Tcp.Flows.Single(f => f.Tuple == tuple).State;

    /// <summary>An application that calls close() the moment it reads end-of-stream.</summary>
    private sealed class CloseOnEof(TcpConnection connection) : ITcpConnectionObserver
    {
        public void OnReadable(TcpConnection c)
        {
            if (c.EndOfStream && c.ReadableBytes == 0) connection.Close();
        }
        public void OnStateChanged(TcpConnection c, TcpState from, TcpState to) { }
        public void OnWritable(TcpConnection c) { }
        public void OnClosed(TcpConnection c) { }
    }
}
