using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Scenarios;

/// <summary>
/// One experiment, as a scenario file declares it: the hosts, the wire between them, the
/// faults, what the applications do and when, and what should be seen. A scenario can carry
/// a second set of settings and expectations, <see cref="CurrentKernel"/>, for a current
/// kernel's defaults where the documents used an older kernel's.
/// </summary>
public sealed record Scenario
{
    public required string Name { get; init; }
    public required string Title { get; init; }
    public string? Source { get; init; }
    public string? Description { get; init; }
    public required string FilePath { get; init; }
    /// <summary>Hosts in declaration order; the first is where the capture is taken.</summary>
    public required IReadOnlyList<HostSpec> Hosts { get; init; }
    public WireSpec Wire { get; init; } = new();
    public required IReadOnlyList<FaultSpec> Faults { get; init; }
    public required Variant Document { get; init; }
    public Variant? CurrentKernel { get; init; }
    public required IReadOnlyList<Step> Steps { get; init; }
    /// <summary>How long the experiment runs (virtual time in simulation).</summary>
    public required TimeSpan Duration { get; init; }
    /// <summary>Moments at which `ss`-style snapshots of every host go into states.txt.</summary>
    public IReadOnlyList<TimeSpan> Snapshots { get; init; } = [];
    /// <summary>Where a run against the real kernel is known to differ, and why.</summary>
    public string? LinuxNotes { get; init; }
    /// <summary>The host that is the real Linux kernel in a `--peer linux` run (default: server).</summary>
    public string LinuxSide { get; init; } = "server";

    public HostSpec Host(string name) => Hosts.First(h => h.Name == name);

    /// <summary>The MTU of a host's link: its own, else the wire's.</summary>
    public int MtuOf(HostSpec host) => host.Mtu ?? Wire.Mtu;
}

/// <summary>A set of sysctls (per host name, or "all") and the expectations that hold with them.</summary>
public sealed record Variant(string Name, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> Sysctls, IReadOnlyList<Expectation> Expectations);

public enum HostKind { Managed, Linux }

/// <summary>A host: its address, what plays it, and its link's MTU where it differs from the wire's.</summary>
public sealed record HostSpec(string Name, Ipv4Cidr Address, HostKind Kind, int Line, int? Mtu = null);

/// <summary>The wire: one-way delay, link rate, queue limit (frames) and the MTU of every host's link unless the host says otherwise.</summary>
public sealed record WireSpec(TimeSpan Delay = default, long RateBitsPerSecond = 0, int QueueLimitFrames = 0, int Mtu = 1500);

/// <summary>A fault rule as written (host names already replaced by addresses) and where.</summary>
public sealed record FaultSpec(FaultRule Rule, string Text, int Line);

/// <summary>Socket options a scenario can set on connect or listen, by their setsockopt names.</summary>
public sealed record SocketOptionsSpec(
    bool? KeepAlive = null,
    TimeSpan? KeepIdle = null,
    TimeSpan? KeepInterval = null,
    int? KeepCount = null,
    TimeSpan? Linger = null,
    bool? NoDelay = null,
    int? ReceiveBuffer = null,
    int? SendBuffer = null,
    int? SynRetries = null,
    int? FastOpenQueue = null)
{
    public TcpSocketOptions ToOptions() => new()
    {
        KeepAlive = KeepAlive ?? false,
        KeepIdle = KeepIdle,
        KeepInterval = KeepInterval,
        KeepCount = KeepCount,
        Linger = Linger,
        NoDelay = NoDelay ?? false,
        ReceiveBufferSize = ReceiveBuffer,
        SendBufferSize = SendBuffer,
        SynRetries = SynRetries,
        FastOpenQueueLength = FastOpenQueue,
    };
}

/// <summary>
/// Something an application does at <see cref="At"/> (or, with <see cref="When"/>, once a
/// socket reaches a state after that time).
/// </summary>
public abstract record Step(string Host, TimeSpan At, StateCondition? When, int Line);

public sealed record StateCondition(string Socket, TcpState State);

/// <summary>listen(); accepted connections are named Accept, Accept2, ...; Accept=false leaves them queued.</summary>
public sealed record ListenStep(string Host, TimeSpan At, StateCondition? When, int Line, ushort Port, int Backlog, string? AcceptAs, SocketOptionsSpec Options) : Step(Host, At, When, Line);

/// <summary>
/// connect() to a host of the scenario or to a bare address (which may belong to nobody); with
/// <see cref="FastOpenData"/>, sendto(MSG_FASTOPEN) instead: the data rides in the SYN when a
/// Fast Open cookie for the server is cached, otherwise the SYN asks for one and the data
/// follows the handshake.
/// </summary>
public sealed record ConnectStep(string Host, TimeSpan At, StateCondition? When, int Line, Ipv4Address Target, ushort Port, string Socket, ushort LocalPort, SocketOptionsSpec Options) : Step(Host, At, When, Line)
{
    public byte[]? FastOpenData { get; init; }
}

/// <summary>
/// A hand-made TCP segment put on the wire as if <see cref="Step.Host"/> sent it (e.g. SYN+FIN,
/// no flags). With <see cref="IntoSocket"/> it belongs to that socket's connection: it comes
/// from the socket's peer, with the sequence number the socket expects next (plus
/// <see cref="Seq"/>) and acknowledging what the socket has sent; otherwise it goes to
/// <see cref="To"/>:<see cref="Port"/> from <see cref="FromPort"/> with the numbers given.
/// </summary>
public sealed record InjectStep(string Host, TimeSpan At, StateCondition? When, int Line, TcpFlags Flags, uint Seq, uint Ack) : Step(Host, At, When, Line)
{
    public Ipv4Address To { get; init; }
    public ushort Port { get; init; }
    public ushort FromPort { get; init; }
    public string? IntoSocket { get; init; }
}

/// <summary>
/// <see cref="Count"/> crafted segments to <see cref="To"/>:<see cref="Port"/>, <see cref="Rate"/>
/// a second, each from a random address of <see cref="From"/> and a random port, with a random
/// sequence number (a SYN flood with spoofed sources). The addresses are drawn from the run's
/// seeded random source, so a seed gives the same flood. With <see cref="StandIn"/> the lab
/// answers ARP for the spoofed addresses and swallows what is sent to them, as silent hosts
/// (or a router in front of them) would; otherwise nobody answers for them.
/// </summary>
public sealed record FloodStep(string Host, TimeSpan At, StateCondition? When, int Line, TcpFlags Flags, Ipv4Address To, ushort Port,
                               Ipv4Cidr From, int Count, double Rate, bool StandIn) : Step(Host, At, When, Line)
{
    /// <summary>When the segment numbered <paramref name="index"/> (from 0) is due, after the flood's start.</summary>
    public TimeSpan Offset(int index) => TimeSpan.FromSeconds(index / Rate);
}

/// <summary>A crafted segment with every field resolved, ready for the wire.</summary>
public sealed record CraftedSegment(Ipv4Address From, ushort FromPort, Ipv4Address To, ushort ToPort, TcpFlags Flags, uint Seq, uint Ack)
{
    /// <summary>Resolves an inject step; a segment into a socket's connection takes its numbers from the capture.</summary>
    public static CraftedSegment For(InjectStep step, RunRecord record)
    {
        if (step.IntoSocket is not { } socket)
            return new(record.HostAddresses[step.Host], step.FromPort, step.To, step.Port, step.Flags, step.Seq, step.Ack);
        FourTuple tuple = record.Sockets.TryGetValue(socket, out NamedSocket? named) && named.Tuple is { } t ? t
            : throw new InvalidOperationException($"line {step.Line}: inject-into {socket}: the socket has no connection yet");
        (uint seq, uint ack) = record.NextSegmentInto(socket)
            ?? throw new InvalidOperationException($"line {step.Line}: inject-into {socket}: none of its segments passed the capture point, so its sequence numbers are unknown");
        return new(tuple.RemoteAddress, tuple.RemotePort, tuple.LocalAddress, tuple.LocalPort, step.Flags, unchecked(seq + step.Seq), ack);
    }

    /// <summary>
    /// One segment of a flood: from a random address of its range (not the range's first or
    /// last address when it has more than two, as for a subnet of its own), a random port
    /// above 1023 and a random sequence number.
    /// </summary>
    public static CraftedSegment Spoofed(FloodStep step, DeterministicRandom random)
    {
        uint size = ~step.From.Mask + 1u;
        uint offset = size > 2 ? (uint)random.Next(1, (int)Math.Min(size - 1, int.MaxValue)) : (uint)random.Next(0, (int)size);
        var from = new Ipv4Address(step.From.Network.Value + offset);
        return new(from, (ushort)random.Next(1024, 65536), step.To, step.Port, step.Flags, random.NextUInt32(), 0);
    }

    public TcpHeader ToHeader() => new()
    {
        SourcePort = FromPort, DestinationPort = ToPort, SequenceNumber = Seq, AcknowledgmentNumber = Ack,
        Flags = Flags, Window = 1024,
    };
}

/// <summary>send(): text, or a count of deterministic bytes.</summary>
public sealed record SendStep(string Host, TimeSpan At, StateCondition? When, int Line, string Socket, byte[] Data) : Step(Host, At, When, Line);

public enum SocketAction { Shutdown, Close, Abort, StopReading, ResumeReading }

public sealed record SocketStep(string Host, TimeSpan At, StateCondition? When, int Line, string Socket, SocketAction Action) : Step(Host, At, When, Line);
