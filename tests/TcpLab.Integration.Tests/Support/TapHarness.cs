using TcpLab.Lab.Namespaces;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Time;

namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// A TAP in a namespace of its own, read by a running <see cref="RealTimeEventLoop"/>: the
/// kernel side is <see cref="DeviceName"/> with <see cref="TestNetwork.KernelCidr"/> and
/// <see cref="TestNetwork.KernelMac"/>; the test plays the user-space side. Disposing removes
/// everything it made, in reverse order.
/// </summary>
internal sealed class TapHarness : IDisposable
{
    public const string DeviceName = "tl0";

    private TapHarness(TestNetwork network) => Network = network;

    public TestNetwork Network { get; }
    public NetworkNamespace Namespace { get; private set; } = null!;
    public RealTimeEventLoop Loop { get; private set; } = null!;
    public PacketBufferPool Pool { get; private set; } = null!;
    public TapDevice Tap { get; private set; } = null!;
    public FrameCollector Frames { get; private set; } = null!;

    /// <param name="handler">Receives the frames instead of <see cref="Frames"/>.</param>
    public static TapHarness Open(TestNetwork network, TapOptions? options = null, IFrameHandler? handler = null)
    {
        options ??= new TapOptions();
        var harness = new TapHarness(network);
        try
        {
            harness.Namespace = NetworkNamespace.Create();
            harness.Loop = new RealTimeEventLoop();
            harness.Loop.Start();
            harness.Pool = new PacketBufferPool(TapDevice.ReceiveBufferSize(options));
            harness.Tap = TapDevice.OpenInNamespace(harness.Namespace.Path, DeviceName, options, harness.Loop, harness.Pool);
            harness.Frames = new FrameCollector(harness.Loop);
            harness.Tap.Attach(handler ?? harness.Frames);
            harness.Namespace.Run("link", "set", DeviceName, "address", network.KernelMacText);
            harness.Namespace.Run("addr", "add", network.KernelCidr, "dev", DeviceName);
            harness.Namespace.Run("link", "set", DeviceName, "up");
            return harness;
        }
        catch
        {
            harness.Dispose();
            throw;
        }
    }

    /// <summary>Rents a buffer on the loop, lets <paramref name="build"/> fill it, and transmits it.</summary>
    public void Transmit(Action<PacketBuffer> build) => Loop.Invoke(() =>
    {
        PacketBuffer frame = Pool.Rent();
        build(frame);
        Tap.Transmit(frame);
    });

    /// <summary>Makes the kernel resolve the user-space address without ARP, so it sends IP straight away.</summary>
    public void AddStaticNeighbour() =>
        Namespace.Run("neigh", "add", Network.StackAddress, "lladdr", Network.StackMacText, "dev", DeviceName, "nud", "permanent");

    public void Dispose()
    {
        Tap?.Dispose();
        Loop?.Dispose();
        Namespace?.Dispose();
    }
}
