using TcpLab.Stack;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Simulation;

/// <summary>
/// Hosts on one simulated wire in virtual time: the default way the lab runs an experiment.
/// The first host added is the observation point: its link carries the fault stage (rules
/// may name any host by address) and the capture, so the pcapng reads like tcpdump on that
/// host, lost packets included with the rule that dropped them.
/// </summary>
public sealed class SimulatedLab
{
    private readonly DeterministicRandom _random;
    private readonly IReadOnlyList<FaultRule> _faults;
    private readonly ICaptureSink? _capture;
    private readonly List<NetworkStack> _hosts = new();

    /// <param name="capture">Receives every frame at the first host's link, with its cause and fate (owned by the caller).</param>
    public SimulatedLab(ulong seed, WireOptions wire, IReadOnlyList<FaultRule>? faults = null, ICaptureSink? capture = null)
    {
        _random = new DeterministicRandom(seed);
        Wire = new SimulatedWire(Loop, wire);
        _faults = faults ?? [];
        _capture = capture;
    }

    public SimulatedEventLoop Loop { get; } = new();
    public SimulatedWire Wire { get; }
    public IReadOnlyList<NetworkStack> Hosts => _hosts;
    public FaultStage? Faults { get; private set; }

    /// <summary>Adds a host with a locally administered MAC derived from its position.</summary>
    /// <param name="tap">
    /// Also record this host's frames where its port meets the wire, as tcpdump on that host would:
    /// what the first host's fault stage drops on its way here is missing, as it is from a real receiver's capture.
    /// </param>
    /// <param name="port">The wire towards this host (its MTU, say); the wire's options if null.</param>
    public NetworkStack AddHost(string name, Ipv4Cidr address, Sysctls sysctls, ICaptureSink? tap = null, WireOptions? port = null)
    {
        var stack = new NetworkStack(Loop, name, sysctls, _random.Derive("host/" + name));
        ILink link = Wire.CreatePort(name, port);
        if (tap is not null) link = new CaptureStage(Loop, link, tap, name);
        if (_hosts.Count == 0)
        {
            Faults = new FaultStage(Loop, link, _faults, _random.Derive("faults"), _capture, name);
            link = Faults;
        }
        var mac = new MacAddress(0x0200_0000_0000UL + (uint)_hosts.Count + 1);
        stack.AddInterface(link, mac, address);
        _hosts.Add(stack);
        return stack;
    }
}
