using TcpLab.Lab.Kernel;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Tests.Kernel;

/// <summary>
/// How the kernel's traced state changes become a run's connections: what the tracepoint leaves
/// out is filled in, and changes of another namespace's sockets on the same addresses are left out.
/// </summary>
public sealed class KernelConnectionBookTests
{
    private static readonly Ipv4Address Client = Ipv4Address.Parse("10.0.0.1");
    private static readonly Ipv4Address Server = Ipv4Address.Parse("10.0.0.2");
    private static readonly FourTuple ServerSide = new(Server, 8888, Client, 47718);
    private static readonly FourTuple ClientSide = new(Client, 47718, Server, 8888);

    private readonly List<KernelStateChange> _changes = new();
    private readonly KernelConnectionBook _book;

    public KernelConnectionBookTests() => _book = new KernelConnectionBook(_changes.Add);

    private void Traced(double at, string host, FourTuple tuple, TcpState from, TcpState to, TcpState? timewait = null) =>
        _book.OnChange(Instant.FromSeconds(at), host, tuple, from, to, () => timewait);

    private string Seen() => Describe(_changes);

    private static string Describe(IEnumerable<KernelStateChange> changes) =>
        string.Join(", ", changes.Select(c => $"{c.At.Nanoseconds / 1e9} {c.Host} #{c.ConnectionId} {c.From}->{c.To}"));

    [Fact]
    public void A_connecting_sockets_first_change_is_held_until_a_later_one_names_its_port()
    {
        Traced(0.100, "client", ClientSide with { LocalPort = 0 }, TcpState.Closed, TcpState.SynSent);
        Assert.Empty(_changes);

        Traced(0.104, "client", ClientSide, TcpState.SynSent, TcpState.Established);

        Assert.Equal("0.1 client #1 Closed->SynSent, 0.104 client #1 SynSent->Established", Seen());
    }

    [Fact]
    public void A_previous_runs_socket_closing_on_the_same_tuple_after_this_runs_connection_ended_is_not_this_runs()
    {
        // This run's server side: born from the listener, closed from LAST_ACK.
        Traced(0.105, "server", ServerSide, TcpState.Listen, TcpState.SynReceived);
        Traced(0.105, "server", ServerSide, TcpState.SynReceived, TcpState.Established);
        Traced(0.501, "server", ServerSide, TcpState.Established, TcpState.CloseWait);
        Traced(0.600, "server", ServerSide, TcpState.CloseWait, TcpState.LastAck);
        Traced(0.602, "server", ServerSide, TcpState.LastAck, TcpState.Closed);
        int before = _changes.Count;

        // The namespace of the run before, torn down in the background, closes its socket with
        // the same addresses and ports (a catalogue run against Linux saw it 35 s later).
        Traced(35.9, "server", ServerSide, TcpState.FinWait1, TcpState.Closed);

        Assert.Equal(before, _changes.Count);
        Assert.Equal(TcpState.Closed, _changes[^1].To);
    }

    [Fact]
    public void A_connection_this_run_never_saw_begin_is_not_this_runs()
    {
        Traced(1.0, "server", ServerSide, TcpState.Established, TcpState.CloseWait);
        Assert.Empty(_changes);
    }

    [Fact]
    public void A_closing_socket_replaced_by_a_timewait_entry_goes_on_in_TIME_WAIT_until_a_dump_no_longer_shows_it()
    {
        Traced(0.1, "client", ClientSide, TcpState.Closed, TcpState.SynSent);
        Traced(0.1, "client", ClientSide, TcpState.SynSent, TcpState.Established);
        Traced(0.5, "client", ClientSide, TcpState.Established, TcpState.FinWait1);
        Traced(0.6, "client", ClientSide, TcpState.FinWait1, TcpState.FinWait2);
        Traced(0.7, "client", ClientSide, TcpState.FinWait2, TcpState.Closed, timewait: TcpState.TimeWait);
        Assert.True(_book.HasTimewait);
        Assert.Equal(["client"], _book.TimewaitHosts);

        _book.OnTimewaitDump(Instant.FromSeconds(30), "client", new Dictionary<FourTuple, TcpState> { [ClientSide] = TcpState.TimeWait });
        _book.OnTimewaitDump(Instant.FromSeconds(60.7), "client", new Dictionary<FourTuple, TcpState>());

        Assert.False(_book.HasTimewait);
        Assert.Equal("0.1 client #1 Closed->SynSent, 0.1 client #1 SynSent->Established, 0.5 client #1 Established->FinWait1, " +
                     "0.6 client #1 FinWait1->FinWait2, 0.7 client #1 FinWait2->TimeWait, 60.7 client #1 TimeWait->Closed", Seen());
    }

    [Fact]
    public void A_new_connection_on_a_tuple_in_TIME_WAIT_takes_the_entry_over()
    {
        Traced(0.1, "client", ClientSide, TcpState.Closed, TcpState.SynSent);
        Traced(0.1, "client", ClientSide, TcpState.SynSent, TcpState.Established);
        Traced(0.5, "client", ClientSide, TcpState.Established, TcpState.FinWait1);
        Traced(0.7, "client", ClientSide, TcpState.FinWait1, TcpState.Closed, timewait: TcpState.TimeWait);

        Traced(2.0, "client", ClientSide, TcpState.Closed, TcpState.SynSent);   // tcp_twsk_unique let the port be reused

        Assert.False(_book.HasTimewait);
        Assert.Equal("2 client #1 TimeWait->Closed, 2 client #2 Closed->SynSent", Describe(_changes.TakeLast(2)));
    }
}
