using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>
/// A client and a server stack on one simulated wire in virtual time. Every frame a host puts
/// on the wire is logged once, when it leaves; optional filters sit between each stack and
/// the wire, so a frame dropped on its way *in* is logged (it was on the wire) and a frame
/// dropped on its way *out* is not.
/// </summary>
public sealed class TwoHosts
{
    public static readonly Ipv4Address ClientIp = Ipv4Address.Parse("10.0.0.1");
    public static readonly Ipv4Address ServerIp = Ipv4Address.Parse("10.0.0.2");
    public static readonly MacAddress ClientMac = MacAddress.Parse("02:00:00:00:00:01");
    public static readonly MacAddress ServerMac = MacAddress.Parse("02:00:00:00:00:02");

    /// <summary>The MAC of the host with <paramref name="address"/>, the client's or the server's.</summary>
    public static MacAddress MacOf(Ipv4Address address) => address == ClientIp ? ClientMac : ServerMac;

    /// <param name="faults">Fault rules (drop, delay, duplicate, reorder ...) on the client's link, both directions, drawing from the seed.</param>
    public TwoHosts(ulong seed = 1, Action<Sysctls>? client = null, Action<Sysctls>? server = null, WireOptions? wire = null,
                    Func<ILink, ILink>? clientLink = null, Func<ILink, ILink>? serverLink = null, bool capture = true,
                    IReadOnlyList<FaultRule>? faults = null)
    {
        var random = new DeterministicRandom(seed);
        Wire = new SimulatedWire(Loop, wire ?? WireOptions.Default);
        var clientSysctls = new Sysctls();
        client?.Invoke(clientSysctls);
        var serverSysctls = new Sysctls();
        server?.Invoke(serverSysctls);
        Client = new NetworkStack(Loop, "client", clientSysctls, random.Derive("client"));
        Server = new NetworkStack(Loop, "server", serverSysctls, random.Derive("server"));
        // Without capture (for allocation measurements: a capture words each packet's cause) the log stays empty.
        ILink clientSide = capture ? new CaptureStage(Loop, Wire.CreatePort("client"), Log, "client") : Wire.CreatePort("client");
        if (faults is not null) clientSide = Faults = new FaultStage(Loop, clientSide, faults, random.Derive("faults"));
        ILink serverSide = capture ? new CaptureStage(Loop, Wire.CreatePort("server"), Log, "server") : Wire.CreatePort("server");
        Client.AddInterface(clientLink?.Invoke(clientSide) ?? clientSide, ClientMac, new Ipv4Cidr(ClientIp, 24));
        Server.AddInterface(serverLink?.Invoke(serverSide) ?? serverSide, ServerMac, new Ipv4Cidr(ServerIp, 24));
    }

    public SimulatedEventLoop Loop { get; } = new();
    public SimulatedWire Wire { get; }
    public NetworkStack Client { get; }
    public NetworkStack Server { get; }
    public FrameLog Log { get; } = new();
    public FaultStage? Faults { get; }

    public void Run(TimeSpan duration) => Loop.RunFor(duration);
    public void RunUntil(double seconds) => Loop.RunUntil(Instant.FromSeconds(seconds));
}
