using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Link;

public class SimulatedWireTests
{
    private const byte A = 0x0A, B = 0x0B, C = 0x0C;
    private const byte Broadcast = 0xFF, Multicast = 0x01;

    private readonly SimulatedEventLoop _loop = new();
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(1500);

    [Fact]
    public void A_frame_arrives_after_its_serialization_time_plus_the_delay_and_queues_behind_earlier_ones()
    {
        var wire = new SimulatedWire(_loop, new WireOptions { Delay = TimeSpan.FromMilliseconds(10), RateBitsPerSecond = 8_000_000 });
        SimulatedPort a = wire.CreatePort("a");
        var b = new Recorder(_loop, wire.CreatePort("b"));

        // Three back-to-back 1000-byte frames at t = 0: 1 ms each at 8 Mbit/s, then 10 ms of cable.
        for (byte tag = 1; tag <= 3; tag++) a.Transmit(Frame(to: B, from: A, 1000, tag));
        // Sent at 20 ms, when the transmitter is long idle again.
        _loop.CreateTimer(() => a.Transmit(Frame(to: B, from: A, 1000, tag: 4))).Arm(Instant.FromMilliseconds(20));
        _loop.RunUntilIdle();

        Assert.Equal(
            [(Ms(11), 1), (Ms(12), 2), (Ms(13), 3), (Ms(31), 4)],
            b.Received.Select(r => (r.At, (int)r.Tag)));
        Assert.Equal(4, b.Port.Counters.FramesDelivered);
        Assert.Equal(4000, b.Port.Counters.BytesDelivered);
        AssertAllBuffersReturned();
    }

    [Fact]
    public void Serialization_rounds_each_frame_up_to_a_nanosecond_without_drifting_over_a_burst()
    {
        var wire = new SimulatedWire(_loop, new WireOptions { RateBitsPerSecond = 3_000_000 });
        SimulatedPort a = wire.CreatePort("a");
        var b = new Recorder(_loop, wire.CreatePort("b"));

        // 800 bits at 3 Mbit/s is 266 666.7 ns: the last bit of frame n leaves at ceil(n * 266 666.7 ns).
        for (byte tag = 1; tag <= 3; tag++) a.Transmit(Frame(to: B, from: A, 100, tag));
        _loop.RunUntilIdle();

        Assert.Equal([266_667L, 533_334L, 800_000L], b.Received.Select(r => r.At.Nanoseconds));
    }

    [Fact]
    public void A_full_queue_drops_the_newest_frames_and_counts_them()
    {
        var wire = new SimulatedWire(_loop, new WireOptions { RateBitsPerSecond = 8_000_000, QueueLimitFrames = 2 });
        SimulatedPort a = wire.CreatePort("a");
        var b = new Recorder(_loop, wire.CreatePort("b"));

        for (byte tag = 1; tag <= 5; tag++) a.Transmit(Frame(to: B, from: A, 1000, tag));
        Assert.Equal(2, b.Port.QueuedFrames);
        Assert.Equal(2000, b.Port.QueuedBytes);
        _loop.RunUntil(Ms(1));
        Assert.Equal(1, b.Port.QueuedFrames); // the first is sent; the second is on its way out
        _loop.RunUntil(Ms(2));
        Assert.Equal(0, b.Port.QueuedFrames);
        a.Transmit(Frame(to: B, from: A, 1000, tag: 6));
        _loop.RunUntilIdle();

        Assert.Equal([(Ms(1), 1), (Ms(2), 2), (Ms(3), 6)], b.Received.Select(r => (r.At, (int)r.Tag)));
        Assert.Equal(3, b.Port.Counters.QueueDrops);
        AssertAllBuffersReturned();
    }

    [Fact]
    public void A_byte_limit_drops_a_frame_that_would_overflow_it_but_takes_a_smaller_one()
    {
        var wire = new SimulatedWire(_loop, new WireOptions { RateBitsPerSecond = 8_000_000, QueueLimitBytes = 2500 });
        SimulatedPort a = wire.CreatePort("a");
        var b = new Recorder(_loop, wire.CreatePort("b"));

        a.Transmit(Frame(to: B, from: A, 1000, tag: 1));
        a.Transmit(Frame(to: B, from: A, 1000, tag: 2));
        a.Transmit(Frame(to: B, from: A, 600, tag: 3)); // 2600 > 2500
        a.Transmit(Frame(to: B, from: A, 500, tag: 4)); // 2500 fits
        _loop.RunUntilIdle();

        Assert.Equal([1, 2, 4], b.Received.Select(r => (int)r.Tag));
        Assert.Equal(1, b.Port.Counters.QueueDrops);
        AssertAllBuffersReturned();
    }

    [Fact]
    public void Floods_unknown_and_group_destinations_and_forwards_to_learned_ones()
    {
        var wire = new SimulatedWire(_loop);
        var a = new Recorder(_loop, wire.CreatePort("a"));
        var b = new Recorder(_loop, wire.CreatePort("b"));
        var c = new Recorder(_loop, wire.CreatePort("c"));

        a.Port.Transmit(Frame(to: B, from: A, 60, tag: 1));         // B unknown: flooded to b and c; a learned
        b.Port.Transmit(Frame(to: A, from: B, 60, tag: 2));         // A known: to a only; b learned
        a.Port.Transmit(Frame(to: B, from: A, 60, tag: 3));         // B known: to b only
        c.Port.Transmit(Frame(to: Broadcast, from: C, 60, tag: 4)); // broadcast: a and b
        a.Port.Transmit(Frame(to: Multicast, from: A, 60, tag: 5)); // group address: b and c
        _loop.RunUntilIdle();

        Assert.Equal([2, 4], a.Received.Select(r => (int)r.Tag));
        Assert.Equal([1, 3, 4, 5], b.Received.Select(r => (int)r.Tag));
        Assert.Equal([1, 5], c.Received.Select(r => (int)r.Tag));
        // Every copy is a whole frame of its own.
        Assert.All(a.Received.Concat(b.Received).Concat(c.Received), r => Assert.Equal(60, r.Length));
        AssertAllBuffersReturned();
    }

    [Fact]
    public void Drops_runts_oversize_frames_frames_for_the_sender_itself_and_frames_for_an_unattached_port()
    {
        var wire = new SimulatedWire(_loop);
        SimulatedPort a = wire.CreatePort("a");
        var b = new Recorder(_loop, wire.CreatePort("b"));
        SimulatedPort unattached = wire.CreatePort("c");

        a.Transmit(Frame(to: B, from: A, 1514, tag: 1)); // the largest frame of a 1500-byte MTU
        a.Transmit(Frame(to: B, from: A, 1515, tag: 2));
        a.Transmit(Frame(to: B, from: A, 13, tag: 3));
        a.Transmit(Frame(to: A, from: A, 60, tag: 4));   // A is learned on a itself
        _loop.RunUntilIdle();

        Assert.Equal([1], b.Received.Select(r => (int)r.Tag));
        Assert.Equal(1, b.Port.Counters.OversizeDrops);
        Assert.Equal(2, unattached.Counters.OversizeDrops + unattached.Counters.UnattachedDrops); // flooded 1514 and 1515
        Assert.Equal(1, a.Counters.RuntDrops);
        Assert.Equal(1, a.Counters.FilteredFrames);
        Assert.Equal(4, a.Counters.FramesSent);
        Assert.Equal(new LinkInfo("a", 1500), a.Info);
        AssertAllBuffersReturned();
    }

    [Fact]
    public void Delivers_through_the_loop_never_inside_Transmit()
    {
        var wire = new SimulatedWire(_loop);
        SimulatedPort a = wire.CreatePort("a");
        var b = new Recorder(_loop, wire.CreatePort("b"));

        a.Transmit(Frame(to: B, from: A, 60, tag: 1));
        Assert.Empty(b.Received);
        _loop.RunUntilIdle();

        Assert.Equal([(Instant.Zero, 1)], b.Received.Select(r => (r.At, (int)r.Tag)));
    }

    [Fact]
    public void Ports_take_their_own_options_over_the_wire_defaults()
    {
        var wire = new SimulatedWire(_loop, new WireOptions { Delay = TimeSpan.FromMilliseconds(5) });
        SimulatedPort a = wire.CreatePort("a");
        var slow = new Recorder(_loop, wire.CreatePort("slow", new WireOptions { Delay = TimeSpan.FromMilliseconds(50), Mtu = 9000 }));
        var fast = new Recorder(_loop, wire.CreatePort("fast"));

        a.Transmit(Frame(to: Broadcast, from: A, 60, tag: 1));
        _loop.RunUntilIdle();

        Assert.Equal([Ms(50)], slow.Received.Select(r => r.At));
        Assert.Equal([Ms(5)], fast.Received.Select(r => r.At));
        Assert.Equal(9000, slow.Port.Info.Mtu);
    }

    [Fact]
    public void The_same_traffic_gives_the_same_deliveries_every_time()
    {
        List<string> first = RunRandomTraffic(seed: 42);
        List<string> second = RunRandomTraffic(seed: 42);
        List<string> other = RunRandomTraffic(seed: 43);

        Assert.True(first.Count > 100, $"only {first.Count} deliveries");
        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public void Steady_traffic_allocates_nothing()
    {
        var wire = new SimulatedWire(_loop, new WireOptions { RateBitsPerSecond = 1_000_000_000, Delay = TimeSpan.FromMicroseconds(50) });
        SimulatedPort a = wire.CreatePort("a");
        SimulatedPort b = wire.CreatePort("b");
        var sink = new ReleasingHandler();
        a.Attach(sink);
        b.Attach(sink);
        Burst(); // learns both MACs, grows the rings and fills the pool

        long before = GC.GetAllocatedBytesForCurrentThread();
        Burst();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(2 * 2 * 100, sink.Count);

        void Burst()
        {
            for (int i = 0; i < 100; i++)
            {
                a.Transmit(Frame(to: B, from: A, 1514, tag: 1));
                b.Transmit(Frame(to: A, from: B, 60, tag: 2));
            }
            _loop.RunUntilIdle();
        }
    }

    /// <summary>
    /// Three ports with different rates, delays and limits; 300 frames between random hosts at
    /// random instants, all drawn from one seed. Returns one line per delivery.
    /// </summary>
    private static List<string> RunRandomTraffic(ulong seed)
    {
        var loop = new SimulatedEventLoop();
        var pool = PacketBufferPool.ForMtu(1500);
        var random = new DeterministicRandom(seed);
        var log = new List<string>();
        var wire = new SimulatedWire(loop, new WireOptions { RateBitsPerSecond = 10_000_000, Delay = TimeSpan.FromMilliseconds(1) });
        SimulatedPort[] ports =
        [
            wire.CreatePort("a"),
            wire.CreatePort("b", new WireOptions { RateBitsPerSecond = 2_000_000, QueueLimitFrames = 4, Delay = TimeSpan.FromMilliseconds(3) }),
            wire.CreatePort("c", new WireOptions { RateBitsPerSecond = 5_000_000, QueueLimitBytes = 6000 }),
        ];
        byte[] hosts = [A, B, C];
        foreach (SimulatedPort port in ports) port.Attach(new LoggingHandler(loop, port.Info.Name, log));

        for (int i = 0; i < 300; i++)
        {
            int from = random.Next(0, 3);
            byte to = random.Next(0, 10) == 0 ? Broadcast : hosts[random.Next(0, 3)];
            int length = random.Next(60, 1515);
            var at = new Instant(random.Next(0, 50_000_000));
            byte tag = (byte)i;
            loop.CreateTimer(() => ports[from].Transmit(Frame(pool, to, hosts[from], length, tag))).Arm(at);
        }
        loop.RunUntilIdle();

        log.AddRange(ports.Select(p => $"{p.Info.Name}: {p.Counters}"));
        Assert.Equal(pool.Allocated, pool.Available);
        return log;
    }

    private PacketBuffer Frame(byte to, byte from, int length, byte tag) => Frame(_pool, to, from, length, tag);

    /// <summary>
    /// A frame to and from the MAC 02:00:00:00:00:<i>host</i> (or broadcast, or a multicast
    /// 01:00:5e:00:00:01), carrying <paramref name="tag"/> just after its Ethernet header.
    /// </summary>
    private static PacketBuffer Frame(PacketBufferPool pool, byte to, byte from, int length, byte tag)
    {
        PacketBuffer frame = pool.Rent();
        Span<byte> bytes = frame.Append(length);
        bytes.Clear();
        Mac(to, bytes);
        if (length >= 12) Mac(from, bytes[6..]);
        if (length > 14) bytes[14] = tag;
        return frame;

        static void Mac(byte host, Span<byte> destination)
        {
            Span<byte> mac = stackalloc byte[6];
            switch (host)
            {
                case Broadcast:
                    mac.Fill(0xFF);
                    break;
                case Multicast:
                    mac.Clear();
                    (mac[0], mac[2], mac[5]) = (0x01, 0x5E, 0x01);
                    break;
                default:
                    mac.Clear();
                    (mac[0], mac[5]) = (0x02, host);
                    break;
            }
            mac[..Math.Min(6, destination.Length)].CopyTo(destination);
        }
    }

    private void AssertAllBuffersReturned() => Assert.Equal(_pool.Allocated, _pool.Available);

    private static Instant Ms(long milliseconds) => Instant.FromMilliseconds(milliseconds);

    /// <summary>A stand-in stack: notes when each frame arrived and what it carried, then frees it.</summary>
    private sealed class Recorder : IFrameHandler
    {
        private readonly SimulatedEventLoop _loop;

        public Recorder(SimulatedEventLoop loop, SimulatedPort port)
        {
            _loop = loop;
            Port = port;
            port.Attach(this);
        }

        public SimulatedPort Port { get; }

        public List<(Instant At, byte Tag, int Length)> Received { get; } = [];

        public void OnFrame(PacketBuffer frame)
        {
            Received.Add((_loop.Now, frame.Span[14], frame.Length));
            frame.Release();
        }
    }

    private sealed class LoggingHandler(SimulatedEventLoop loop, string name, List<string> log) : IFrameHandler
    {
        public void OnFrame(PacketBuffer frame)
        {
            log.Add($"{loop.Now.Nanoseconds} {name} tag {frame.Span[14]} length {frame.Length}");
            frame.Release();
        }
    }

    private sealed class ReleasingHandler : IFrameHandler
    {
        public int Count;

        public void OnFrame(PacketBuffer frame)
        {
            Count++;
            frame.Release();
        }
    }
}
