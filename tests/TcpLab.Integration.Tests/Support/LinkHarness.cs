using TcpLab.Lab.Namespaces;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Time;

namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// A link under test, read by a running <see cref="RealTimeEventLoop"/>, and the kernel
/// interface at its other end: <see cref="KernelDevice"/> in <see cref="KernelNamespace"/>,
/// holding <see cref="TestNetwork.KernelCidr"/> and <see cref="TestNetwork.KernelMac"/>. The
/// test plays the user-space stack. Disposing removes everything it made, in reverse order,
/// on every path.
/// </summary>
internal sealed class LinkHarness : IDisposable
{
    public const string TapName = "tl0";
    public const string StackVethName = "ps0";
    public const string KernelVethName = "pk0";

    private readonly List<IDisposable> _owned = [];

    private LinkHarness(TestNetwork network) => Network = network;

    public TestNetwork Network { get; }
    public NetworkNamespace KernelNamespace { get; private set; } = null!;
    /// <summary>Where the packet socket's veth end lives; null over a TAP.</summary>
    public NetworkNamespace? StackNamespace { get; private set; }
    public string KernelDevice { get; private set; } = null!;
    public RealTimeEventLoop Loop { get; private set; } = null!;
    public PacketBufferPool Pool { get; private set; } = null!;
    public FileDescriptorLink Link { get; private set; } = null!;
    public FrameCollector Frames { get; private set; } = null!;

    /// <summary>A TAP: the kernel side is the TAP's own interface, in one namespace.</summary>
    /// <param name="handler">Receives the frames instead of <see cref="Frames"/>.</param>
    public static LinkHarness OverTap(TestNetwork network, TapOptions? options = null, IFrameHandler? handler = null)
    {
        options ??= new TapOptions();
        return Build(network, TapName, handler, h =>
        {
            h.Pool = new PacketBufferPool(TapDevice.ReceiveBufferSize(options));
            return TapDevice.OpenInNamespace(h.KernelNamespace.Path, TapName, options, h.Loop, h.Pool);
        });
    }

    /// <summary>
    /// A packet socket on one end of a veth pair, in a namespace of its own (address-less, so
    /// that namespace's kernel stays out of the conversation); the kernel side is the other end.
    /// </summary>
    public static LinkHarness OverVeth(TestNetwork network, IFrameHandler? handler = null) =>
        Build(network, KernelVethName, handler, h =>
        {
            NetworkNamespace stackNamespace = h.StackNamespace = h.Own(NetworkNamespace.Create());
            stackNamespace.CreateVethPair(StackVethName, h.KernelNamespace, KernelVethName);
            stackNamespace.Run("link", "set", StackVethName, "up");
            h.Pool = new PacketBufferPool(PacketSocketLink.ReceiveBufferSize(1500));
            return PacketSocketLink.OpenInNamespace(stackNamespace.Path, StackVethName, h.Loop, h.Pool);
        });

    private static LinkHarness Build(TestNetwork network, string kernelDevice, IFrameHandler? handler, Func<LinkHarness, FileDescriptorLink> openLink)
    {
        var h = new LinkHarness(network) { KernelDevice = kernelDevice };
        try
        {
            h.KernelNamespace = h.Own(NetworkNamespace.Create());
            h.Loop = h.Own(new RealTimeEventLoop());
            h.Loop.Start();
            h.Link = h.Own(openLink(h));
            h.Frames = new FrameCollector(h.Loop);
            h.Link.Attach(handler ?? h.Frames);
            h.KernelNamespace.Run("link", "set", kernelDevice, "address", network.KernelMacText);
            h.KernelNamespace.Run("addr", "add", network.KernelCidr, "dev", kernelDevice);
            h.KernelNamespace.Run("link", "set", kernelDevice, "up");
            return h;
        }
        catch
        {
            h.Dispose();
            throw;
        }
    }

    /// <summary>Rents a buffer on the loop, lets <paramref name="build"/> fill it, and transmits it.</summary>
    public void Transmit(Action<PacketBuffer> build) => Loop.Invoke(() =>
    {
        PacketBuffer frame = Pool.Rent();
        build(frame);
        Link.Transmit(frame);
    });

    public void TransmitArpRequestForKernel() =>
        Transmit(frame => TestFrames.WriteArpRequest(frame.Append(TestFrames.ArpFrameLength), Network.StackMac, Network.StackIp, Network.KernelIp));

    /// <summary>Makes the kernel resolve the user-space address without ARP, so it sends IP at once.</summary>
    public void AddStaticNeighbour() =>
        KernelNamespace.Run("neigh", "add", Network.StackAddress, "lladdr", Network.StackMacText, "dev", KernelDevice, "nud", "permanent");

    /// <summary>Disposes link, loop and namespaces, newest first.</summary>
    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }

    private T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }
}
