using System.Buffers.Binary;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Time;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Stack.Link.Simulation;

/// <summary>
/// A simulated Ethernet segment: a learning switch joining the stacks of one simulation, each
/// through a <see cref="SimulatedPort"/> it uses as its link. All of it runs on the shared
/// <see cref="SimulatedEventLoop"/>, in virtual time.
/// <para>
/// Like a bridge's forwarding database, the switch learns each source MAC's port from the
/// frames it sees; a frame goes to the port its destination was learned on, and is flooded to
/// every other port (a copy each) when its destination is a group address or not yet known.
/// Towards each port, frames queue (drop-tail), serialize at the port's rate and then
/// propagate for its delay (<see cref="WireOptions"/>); each port delivers strictly in order.
/// </para>
/// <para>
/// Deterministic: ports flood in the order they were created, the table is only looked up,
/// and arrival instants are exact integer arithmetic on nanoseconds.
/// </para>
/// </summary>
public sealed class SimulatedWire
{
    internal const int EthernetHeaderLength = 14;
    private const int MacLength = 6;

    private readonly EventLoop _loop;
    private readonly WireOptions _options;
    private readonly List<SimulatedPort> _ports = [];
    private readonly Dictionary<ulong, SimulatedPort> _forwardingTable = [];

    /// <param name="options">Defaults for every port created without options of its own.</param>
    public SimulatedWire(EventLoop loop, WireOptions? options = null)
    {
        _loop = loop;
        _options = options ?? WireOptions.Default;
        _options.Validate();
    }

    /// <summary>Ports in creation order.</summary>
    public IReadOnlyList<SimulatedPort> Ports => _ports;

    /// <summary>Plugs a stack into the segment.</summary>
    /// <param name="name">Link name (<see cref="LinkInfo.Name"/>), e.g. "sim:client".</param>
    /// <param name="options">How frames travel towards this port; the wire's options if null.</param>
    public SimulatedPort CreatePort(string name, WireOptions? options = null)
    {
        options ??= _options;
        options.Validate();
        var port = new SimulatedPort(this, _loop, name, options);
        _ports.Add(port);
        return port;
    }

    /// <summary>Switches one frame sent by <paramref name="source"/>; takes ownership of it.</summary>
    internal void Forward(SimulatedPort source, PacketBuffer frame)
    {
        ReadOnlySpan<byte> bytes = frame.Span;
        if (bytes.Length < EthernetHeaderLength)
        {
            source.Counters.RuntDrops++;
            frame.Release();
            return;
        }
        ulong destination = ReadMac(bytes);
        ulong sourceMac = ReadMac(bytes[MacLength..]);

        // IEEE 802 never sends from a group address; learning one would misdirect its traffic.
        if (!IsGroupAddress(sourceMac)) _forwardingTable[sourceMac] = source;

        if (!IsGroupAddress(destination) && _forwardingTable.TryGetValue(destination, out SimulatedPort? known))
        {
            if (known == source)
            {
                // The destination lives behind the port the frame came from: a switch filters it.
                source.Counters.FilteredFrames++;
                frame.Release();
            }
            else
            {
                known.Enqueue(frame);
            }
            return;
        }

        // Flood: a copy to every other port, the original to the last one.
        SimulatedPort? previous = null;
        foreach (SimulatedPort port in _ports)
        {
            if (port == source) continue;
            previous?.Enqueue(frame.Clone());
            previous = port;
        }
        if (previous is null) frame.Release();
        else previous.Enqueue(frame);
    }

    private static ulong ReadMac(ReadOnlySpan<byte> bytes) =>
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(bytes) << 32) | BinaryPrimitives.ReadUInt32BigEndian(bytes[2..]);

    /// <summary>The I/G bit, lowest bit of the first octet: multicast or broadcast.</summary>
    private static bool IsGroupAddress(ulong mac) => (mac & 0x0100_0000_0000UL) != 0;
}

/// <summary>
/// One port of a <see cref="SimulatedWire"/>: the link a stack transmits into and receives from.
/// Frames for it wait in one ring of (delivery instant, frame), in delivery order, and one
/// timer armed for the ring's head delivers them, so a frame in flight costs no allocation.
/// </summary>
public sealed class SimulatedPort : ILink
{
    private const long NanosecondsPerSecond = 1_000_000_000;

    private readonly SimulatedWire _wire;
    private readonly EventLoop _loop;
    private readonly WireOptions _options;
    private readonly int _maxFrameLength;
    private readonly Timer _deliveryTimer;
    private IFrameHandler? _handler;

    // Frames in flight towards this port, oldest first: _ring[_head], ... (_count of them, wrapping).
    private InFlight[] _ring = new InFlight[16];
    private int _head;
    private int _count;

    // The queue is the newest _queuedFrames entries of the ring: those not yet fully serialized.
    private int _queuedFrames;
    private long _queuedBytes;

    /// <summary>When the transmitter finishes the last frame given to it.</summary>
    private Instant _transmitterFreeAt;

    /// <summary>
    /// Serialization time rounds up to whole nanoseconds; this is what the rounding took too much,
    /// in units of 1/rate ns (0 or negative), given back to the next back-to-back frame so that
    /// a long burst stays exact.
    /// </summary>
    private long _roundingCarry;

    internal SimulatedPort(SimulatedWire wire, EventLoop loop, string name, WireOptions options)
    {
        _wire = wire;
        _loop = loop;
        _options = options;
        _maxFrameLength = SimulatedWire.EthernetHeaderLength + options.Mtu;
        _deliveryTimer = loop.CreateTimer(DeliverDue);
        Info = new LinkInfo(name, options.Mtu);
    }

    public LinkInfo Info { get; }

    public WireOptions Options => _options;

    public SimulatedPortCounters Counters { get; } = new();

    /// <summary>Frames towards this port not yet fully serialized (the queue, transmitter included).</summary>
    public int QueuedFrames
    {
        get
        {
            RetireSerialized(_loop.Now);
            return _queuedFrames;
        }
    }

    /// <summary>Bytes of <see cref="QueuedFrames"/>.</summary>
    public long QueuedBytes
    {
        get
        {
            RetireSerialized(_loop.Now);
            return _queuedBytes;
        }
    }

    /// <summary>Frames towards this port not yet delivered: queued, serializing or propagating.</summary>
    public int InFlightFrames => _count;

    public void Attach(IFrameHandler handler) => _handler = handler;

    public void Transmit(PacketBuffer frame)
    {
        Counters.FramesSent++;
        _wire.Forward(this, frame);
    }

    /// <summary>A frame the switch sends towards this port: queue it, or drop it. Takes ownership.</summary>
    internal void Enqueue(PacketBuffer frame)
    {
        int length = frame.Length;
        if (length > _maxFrameLength)
        {
            Counters.OversizeDrops++;
            frame.Release();
            return;
        }

        Instant now = _loop.Now;
        RetireSerialized(now);
        if ((_options.QueueLimitFrames > 0 && _queuedFrames >= _options.QueueLimitFrames)
            || (_options.QueueLimitBytes > 0 && _queuedBytes + length > _options.QueueLimitBytes))
        {
            Counters.QueueDrops++;
            frame.Release();
            return;
        }

        Instant serialized = Serialize(now, length);
        if (serialized > now)
        {
            _queuedFrames++;
            _queuedBytes += length;
        }
        Push(new InFlight(serialized + _options.Delay, serialized, length, frame));
    }

    /// <summary>When a frame of <paramref name="length"/> bytes offered now has its last bit sent.</summary>
    private Instant Serialize(Instant now, int length)
    {
        long rate = _options.RateBitsPerSecond;
        if (rate == 0) return now;
        if (_transmitterFreeAt <= now)
        {
            // Idle transmitter: it starts now, and earlier rounding no longer matters.
            _transmitterFreeAt = now;
            _roundingCarry = 0;
        }
        // Exact time is bits / rate seconds; keep it in ns * rate units until the one division.
        Int128 numerator = (Int128)length * 8 * NanosecondsPerSecond + _roundingCarry;
        long nanoseconds = (long)((numerator + rate - 1) / rate);
        _roundingCarry = (long)(numerator - (Int128)nanoseconds * rate);
        _transmitterFreeAt = new Instant(_transmitterFreeAt.Nanoseconds + nanoseconds);
        return _transmitterFreeAt;
    }

    /// <summary>Drops from the queue count the frames whose last bit is sent by <paramref name="now"/>.</summary>
    private void RetireSerialized(Instant now)
    {
        while (_queuedFrames > 0)
        {
            ref InFlight oldestQueued = ref _ring[(_head + _count - _queuedFrames) % _ring.Length];
            if (oldestQueued.SerializedAt > now) break;
            _queuedFrames--;
            _queuedBytes -= oldestQueued.Length;
        }
    }

    private void Push(in InFlight entry)
    {
        if (_count == _ring.Length) Grow();
        _ring[(_head + _count) % _ring.Length] = entry;
        _count++;
        // Delivery instants only grow (serialization ends grow, the delay is fixed), so only a new
        // head needs the timer; later entries wait behind it.
        if (_count == 1) _deliveryTimer.Arm(entry.DeliverAt);
    }

    private void Grow()
    {
        var larger = new InFlight[_ring.Length * 2];
        for (int i = 0; i < _count; i++) larger[i] = _ring[(_head + i) % _ring.Length];
        _ring = larger;
        _head = 0;
    }

    /// <summary>The delivery timer: hands over every frame due, in order, then re-arms for the next.</summary>
    private void DeliverDue()
    {
        Instant now = _loop.Now;
        while (_count > 0 && _ring[_head].DeliverAt <= now)
        {
            InFlight due = _ring[_head];
            _ring[_head] = default;
            // The head is in the queue only when every entry is (the queue is the ring's tail).
            if (_queuedFrames == _count)
            {
                _queuedFrames--;
                _queuedBytes -= due.Length;
            }
            _head = (_head + 1) % _ring.Length;
            _count--;

            // The handler may transmit, and so push onto this very ring: nothing of it is held across the call.
            PacketBuffer frame = due.Frame;
            frame.Timestamp = now;
            if (_handler is null)
            {
                Counters.UnattachedDrops++;
                frame.Release();
                continue;
            }
            Counters.FramesDelivered++;
            Counters.BytesDelivered += due.Length;
            _handler.OnFrame(frame);
        }
        if (_count > 0) _deliveryTimer.Arm(_ring[_head].DeliverAt);
    }

    private readonly record struct InFlight(Instant DeliverAt, Instant SerializedAt, int Length, PacketBuffer Frame);
}

/// <summary>What happened to the frames of one <see cref="SimulatedPort"/>.</summary>
public sealed class SimulatedPortCounters
{
    /// <summary>Frames the port's stack transmitted into the wire.</summary>
    public long FramesSent { get; internal set; }

    /// <summary>Frames handed to the port's stack.</summary>
    public long FramesDelivered { get; internal set; }

    public long BytesDelivered { get; internal set; }

    /// <summary>Frames towards the port dropped because its queue was full (drop-tail).</summary>
    public long QueueDrops { get; internal set; }

    /// <summary>Frames towards the port longer than its MTU allows.</summary>
    public long OversizeDrops { get; internal set; }

    /// <summary>Frames the port's stack sent that were shorter than an Ethernet header.</summary>
    public long RuntDrops { get; internal set; }

    /// <summary>Frames the port's stack sent to a MAC learned on this same port.</summary>
    public long FilteredFrames { get; internal set; }

    /// <summary>Frames that arrived while no handler was attached to the port.</summary>
    public long UnattachedDrops { get; internal set; }

    public override string ToString() =>
        $"sent {FramesSent}, delivered {FramesDelivered} ({BytesDelivered} bytes), drops: queue {QueueDrops}, "
        + $"oversize {OversizeDrops}, runt {RuntDrops}, filtered {FilteredFrames}, unattached {UnattachedDrops}";
}
