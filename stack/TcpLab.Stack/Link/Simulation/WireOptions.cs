namespace TcpLab.Stack.Link.Simulation;

/// <summary>
/// What a frame meets on its way out of a <see cref="SimulatedWire"/> towards one port: a
/// drop-tail FIFO, a transmitter of finite rate, then the propagation delay of the cable.
/// Set once on the wire for all ports, or per port in <see cref="SimulatedWire.CreatePort"/>.
/// </summary>
public sealed record WireOptions
{
    /// <summary>Infinitely fast, no delay, no queue limit, 1500-byte MTU.</summary>
    public static readonly WireOptions Default = new();

    /// <summary>
    /// Serialization rate of the transmitter towards the port, in bits per second of Ethernet
    /// frame (header and payload as handed to Transmit; no preamble, FCS or inter-frame gap).
    /// 0 sends every frame at once.
    /// </summary>
    public long RateBitsPerSecond { get; init; }

    /// <summary>Propagation delay, added once a frame's last bit is sent.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>
    /// Most bytes waiting for or in serialization; a frame that would exceed it is dropped
    /// (drop-tail). 0 for no limit. Only a finite rate builds a queue.
    /// </summary>
    public int QueueLimitBytes { get; init; }

    /// <summary>Most frames waiting for or in serialization; 0 for no limit.</summary>
    public int QueueLimitFrames { get; init; }

    /// <summary>Largest payload of a frame the port takes (the link's MTU); bigger frames are dropped.</summary>
    public int Mtu { get; init; } = 1500;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(RateBitsPerSecond, nameof(RateBitsPerSecond));
        ArgumentOutOfRangeException.ThrowIfLessThan(Delay, TimeSpan.Zero, nameof(Delay));
        ArgumentOutOfRangeException.ThrowIfNegative(QueueLimitBytes, nameof(QueueLimitBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(QueueLimitFrames, nameof(QueueLimitFrames));
        ArgumentOutOfRangeException.ThrowIfLessThan(Mtu, 68, nameof(Mtu)); // RFC 791's minimum
    }
}
