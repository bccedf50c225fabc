using TcpLab.Lab.Hosting;
using TcpLab.Lab.Simulation;
using TcpLab.Lab.Trace;
using TcpLab.Stack;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Lab.Tests.Trace;

/// <summary>
/// A client (10.0.0.1) sends to a server (10.0.0.2) in simulation while fault rules act on the
/// client's link. Two captures come out: the client's (the lab's own, which records every frame
/// before its fate, as tcpdump on the sender sees it) and the server's (frames as they reach its
/// port, so what the rules dropped is missing, as from a real receiver's capture).
/// </summary>
/// <param name="Name">Names the capture files.</param>
/// <param name="Faults">Rules in the text form, e.g. "drop from=10.0.0.1 len=1.. nth=3".</param>
/// <param name="Bytes">What the client sends before it closes.</param>
/// <param name="Expected">Labels the two captures must show between them, so a change in the stack cannot quietly empty the scenario.</param>
public sealed record AnalysisScenario(string Name, string[] Faults, int Bytes, TcpAnalysisFlags Expected)
{
    private static readonly Ipv4Address ServerAddress = Ipv4Address.Parse("10.0.0.2");
    private const ushort ServerPort = 8888;

    /// <summary>The server reads nothing for this long after accepting, then everything.</summary>
    public TimeSpan ServerStallsFor { get; init; }

    /// <summary>The server's SO_RCVBUF, to make its window close soon.</summary>
    public int? ServerReceiveBuffer { get; init; }

    /// <summary>The client stays idle this long after sending, before it closes.</summary>
    public TimeSpan ClientIdles { get; init; }

    public TcpSocketOptions ClientOptions { get; init; } = new();

    public override string ToString() => Name;

    /// <summary>Runs the exchange and writes NAME-client.pcapng and NAME-server.pcapng into <paramref name="directory"/>.</summary>
    public (string ClientView, string ServerView) Capture(string directory)
    {
        string clientView = Path.Combine(directory, Name + "-client.pcapng");
        string serverView = Path.Combine(directory, Name + "-server.pcapng");
        Task client, server;
        using (PcapNgWriter clientCapture = PcapNgWriter.Create(clientView))
        using (PcapNgWriter serverCapture = PcapNgWriter.Create(serverView))
        {
            var lab = new SimulatedLab(seed: 1, WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(5) },
                                       [.. Faults.Select(FaultRule.Parse)], clientCapture);
            var sysctls = new SysctlOverrides();
            NetworkStack clientHost = lab.AddHost("client", Ipv4Cidr.Parse("10.0.0.1/24"), sysctls.For("client"));
            NetworkStack serverHost = lab.AddHost("server", Ipv4Cidr.Parse("10.0.0.2/24"), sysctls.For("server"), tap: serverCapture);
            server = lab.Loop.Spawn(() => Serve(lab.Loop, serverHost));
            client = lab.Loop.Spawn(() => Send(lab.Loop, clientHost));
            lab.Loop.RunFor(TimeSpan.FromMinutes(2));
        }
        // Faults in the applications (a refused connection, a reset) would leave the captures meaningless.
        Task.WaitAll(client, server);
        return (clientView, serverView);
    }

    private async Task Serve(EventLoop loop, NetworkStack host)
    {
        using var listener = new TcpSocket(host, new TcpSocketOptions { ReceiveBufferSize = ServerReceiveBuffer });
        listener.Bind(ServerPort);
        listener.Listen(16);
        using TcpSocket connection = await listener.AcceptAsync();
        if (ServerStallsFor > TimeSpan.Zero) await Sleep(loop, ServerStallsFor);
        var buffer = new byte[64 * 1024];
        while (await connection.ReceiveAsync(buffer) > 0) { }
    }

    private async Task Send(EventLoop loop, NetworkStack host)
    {
        using var socket = new TcpSocket(host, ClientOptions);
        await socket.ConnectAsync(ServerAddress, ServerPort);
        var data = new byte[Bytes];
        new DeterministicRandom(2).NextBytes(data);
        await socket.SendAsync(data);
        if (ClientIdles > TimeSpan.Zero) await Sleep(loop, ClientIdles);
    }

    private static Task Sleep(EventLoop loop, TimeSpan duration)
    {
        var woken = new TaskCompletionSource();
        Timer timer = loop.CreateTimer(() => woken.TrySetResult());
        timer.Arm(loop.Now + duration);
        return woken.Task;
    }

    /// <summary>One scenario per way of upsetting a transfer; between them they show every label.</summary>
    public static readonly AnalysisScenario[] All =
    [
        // The third data segment lost in a burst: the receiver sees a hole and sends duplicate
        // ACKs with SACK blocks; the third makes the sender resend it at once (a fast retransmit).
        new("burst-loss", ["drop from=10.0.0.1 len=1.. nth=3"], 40_000,
            TcpAnalysisFlags.LostSegment | TcpAnalysisFlags.DuplicateAck | TcpAnalysisFlags.FastRetransmission),
        // The only data segment lost: nothing follows to trigger duplicate ACKs, so the RTO fires.
        new("tail-loss", ["drop from=10.0.0.1 len=1.. nth=1"], 1000, TcpAnalysisFlags.Retransmission),
        // A copy of a data segment right behind it: the receiver has ACKed the original already,
        // so the copy reads as spurious, and the receiver answers it with a duplicate ACK.
        // The first SYN lost on its way: the client's capture shows the SYN again, a retransmission.
        new("syn-loss", ["drop from=10.0.0.1 tcp=S nth=1"], 1000, TcpAnalysisFlags.Retransmission),
        new("duplicate", ["duplicate 1 from=10.0.0.1 len=1.. nth=2"], 10_000,
            TcpAnalysisFlags.SpuriousRetransmission | TcpAnalysisFlags.DuplicateAck),
        new("reorder", ["reorder 1 from=10.0.0.1 len=1.. nth=2"], 10_000, TcpAnalysisFlags.OutOfOrder | TcpAnalysisFlags.LostSegment),
        // The ACK of the data held past the RTO: the data goes again although it had arrived. The
        // client waits before it closes, or the server's FIN would ACK the data first.
        new("late-ack", ["delay 600ms from=10.0.0.2 tcp=. len=0 nth=1"], 1000, TcpAnalysisFlags.SpuriousRetransmission)
        {
            ClientIdles = TimeSpan.FromSeconds(2),
        },
        // A receiver that stops reading: its window fills and closes, the sender probes, then it
        // reads. Linux probes with snd_una - 1 and no data, which Wireshark labels a keep-alive.
        new("stalled-reader", [], 200_000,
            TcpAnalysisFlags.WindowFull | TcpAnalysisFlags.ZeroWindow | TcpAnalysisFlags.WindowUpdate | TcpAnalysisFlags.KeepAlive)
        {
            ServerStallsFor = TimeSpan.FromSeconds(5),
            ServerReceiveBuffer = 16 * 1024,
        },
        new("keepalive", [], 10, TcpAnalysisFlags.KeepAlive | TcpAnalysisFlags.KeepAliveAck)
        {
            ClientIdles = TimeSpan.FromSeconds(25),
            ClientOptions = new TcpSocketOptions { KeepAlive = true, KeepIdle = TimeSpan.FromSeconds(10), KeepInterval = TimeSpan.FromSeconds(5) },
        },
    ];
}
