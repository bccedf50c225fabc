using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Link;

public class CaptureStageTests
{
    private readonly SimulatedEventLoop _loop = new();
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(1500);

    [Fact]
    public void Records_both_directions_with_the_cause_as_comment_and_passes_frames_on_unchanged()
    {
        var wire = new SimulatedWire(_loop, new WireOptions { Delay = TimeSpan.FromMilliseconds(10) });
        SimulatedPort clientPort = wire.CreatePort("sim:client");
        SimulatedPort serverPort = wire.CreatePort("sim:server");
        var file = new MemoryStream();
        var capture = new PcapNgWriter(file, leaveOpen: true);
        var client = new CaptureStage(_loop, clientPort, capture);
        var clientReceived = new List<byte[]>();
        client.Attach(new Handler(frame => clientReceived.Add(frame.Span.ToArray())));
        // The server answers each frame at once, as a SYN-ACK.
        serverPort.Attach(new Handler(_ => serverPort.Transmit(Frame(from: 2, to: 1, 0x22, new PacketCause(CauseCode.TcpSynAck)))));

        client.Transmit(Frame(from: 1, to: 2, 0x11, new PacketCause(CauseCode.TcpSynRetransmit, 2, 6, 2000)));
        _loop.CreateTimer(() => client.Transmit(Frame(from: 1, to: 2, 0x33, default))).Arm(Instant.FromMicroseconds(1_500_250));
        _loop.RunUntilIdle();
        capture.Dispose();

        long epoch = CaptureTime.UnixNanoseconds(SimulatedEventLoop.DefaultEpoch);
        using var reader = new CaptureFileReader(new MemoryStream(file.ToArray()));
        Assert.Equal(
        [
            (epoch, PacketDirection.Outbound, 0x11, "RTO: SYN retransmit 2/6, rto 2 s"),
            (epoch + 20_000_000, PacketDirection.Inbound, 0x22, "SYN-ACK for a SYN"),
            (epoch + 1_500_250_000, PacketDirection.Outbound, 0x33, null),
            (epoch + 1_520_250_000, PacketDirection.Inbound, 0x22, "SYN-ACK for a SYN"),
        ],
        reader.ReadAll().Select(r => (r.Timestamp, r.Direction, (int)r.Data[14], r.Comment)));
        Assert.Equal("sim:client", Assert.Single(reader.Interfaces).Name);
        Assert.Equal([0x22, 0x22], clientReceived.Select(f => (int)f[14]));
        Assert.All(clientReceived, f => Assert.Equal(FrameBytes(from: 2, to: 1, 0x22), f));
        Assert.Same(clientPort.Info, client.Info);
        Assert.Equal(_pool.Allocated, _pool.Available);
    }

    [Fact]
    public void Without_a_handler_a_received_frame_is_recorded_and_released()
    {
        var wire = new SimulatedWire(_loop);
        SimulatedPort a = wire.CreatePort("a");
        var sink = new ListSink();
        _ = new CaptureStage(_loop, wire.CreatePort("b"), sink, interfaceName: "tap-b");

        a.Transmit(Frame(from: 1, to: 2, 0x44, default));
        _loop.RunUntilIdle();

        Assert.Equal(["tap-b"], sink.Interfaces);
        Assert.Equal([(0, PacketDirection.Inbound, 60)], sink.Frames);
        Assert.Equal(_pool.Allocated, _pool.Available);
    }

    /// <summary>A 60-byte frame from 02:00:00:00:00:<i>from</i> to 02:00:00:00:00:<i>to</i>, with a tag after the Ethernet header.</summary>
    private static byte[] FrameBytes(byte from, byte to, byte tag)
    {
        var bytes = new byte[60];
        (bytes[0], bytes[5], bytes[6], bytes[11], bytes[12], bytes[14]) = (0x02, to, 0x02, from, 0x08, tag);
        return bytes;
    }

    private PacketBuffer Frame(byte from, byte to, byte tag, PacketCause cause)
    {
        PacketBuffer frame = _pool.Rent();
        FrameBytes(from, to, tag).CopyTo(frame.Append(60));
        frame.Cause = cause;
        return frame;
    }

    private sealed class Handler(Action<PacketBuffer> onFrame) : IFrameHandler
    {
        public void OnFrame(PacketBuffer frame)
        {
            onFrame(frame);
            frame.Release();
        }
    }

    private sealed class ListSink : ICaptureSink
    {
        public List<string> Interfaces { get; } = [];

        public List<(int Interface, PacketDirection Direction, int Length)> Frames { get; } = [];

        public int AddInterface(string name, int snapLength = PcapNgWriter.DefaultSnapLength)
        {
            Interfaces.Add(name);
            return Interfaces.Count - 1;
        }

        public void Record(int interfaceId, long timestamp, PacketDirection direction, ReadOnlySpan<byte> frame, ReadOnlySpan<char> comment) =>
            Frames.Add((interfaceId, direction, frame.Length));
    }
}
