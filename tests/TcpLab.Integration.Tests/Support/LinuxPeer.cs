using System.Net;
using System.Net.Sockets;
using TcpLab.Lab.Namespaces;
using TcpLab.Stack;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Wire;

namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// The managed stack behind a TAP device in a test-owned namespace, facing the real kernel:
/// the kernel at 10.77.N.1, the managed stack at 10.77.N.2. Linux sockets for the test are
/// created inside the namespace (a socket lives in the namespace of the thread creating it),
/// so the test drives both ends in-process. Every frame on the TAP is logged with its time.
/// </summary>
internal sealed class LinuxPeer : IDisposable
{
    private readonly TapAttachment _lab;

    /// <param name="faults">Fault rules on the managed stack's TAP link (both directions unless a rule says).</param>
    /// <param name="record">Keep every frame in <see cref="Frames"/> (off for bulk transfers).</param>
    public LinuxPeer(int n, Action<Sysctls>? managed = null, IReadOnlyList<KeyValuePair<string, string>>? kernelSysctls = null,
                     bool offload = false, IReadOnlyList<FaultRule>? faults = null, bool record = true)
    {
        Network = new TestNetwork(n);
        var sysctls = new Sysctls();
        managed?.Invoke(sysctls);
        _lab = TapAttachment.Create(new TapAttachmentOptions
        {
            ManagedAddress = Ipv4Cidr.Parse(Network.StackAddress + "/24"),
            KernelAddress = Ipv4Cidr.Parse(Network.KernelCidr),
            Sysctls = sysctls,
            KernelSysctls = kernelSysctls ?? [],
            Capture = record ? Frames : null,
            Faults = faults ?? [],
            Seed = (ulong)n,
            Offload = offload,
        });
        _lab.Loop.Invoke(() => _lab.Stack.Tcp.StateChanged += change => { lock (States) States.Add(change); });
    }

    public TestNetwork Network { get; }
    public NetworkStack Stack => _lab.Stack;
    public Ipv4Address KernelAddress => Ipv4Address.Parse(Network.KernelAddress);
    public Ipv4Address StackAddress => Ipv4Address.Parse(Network.StackAddress);
    public IPAddress StackEndPointAddress => IPAddress.Parse(Network.StackAddress);
    public string NamespacePath => _lab.Namespace.Path;
    public TapAttachment Lab => _lab;
    public FrameRecorder Frames { get; } = new();
    public List<TcpStateChange> States { get; } = new();

    /// <summary>A kernel TCP socket in the test's namespace.</summary>
    public Socket LinuxSocket() =>
        NetworkNamespaceThread.Run(NamespacePath, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));

    /// <summary>`ss -tan` in the namespace, for the kernel's view of its connections.</summary>
    public string KernelSockets() => _lab.Namespace.Exec("ss", "-tan").StandardOutput;

    public T OnLoop<T>(Func<T> function) => _lab.Loop.Invoke(function);

    public void Dispose() => _lab.Dispose();
}

/// <summary>Frames seen on the TAP (thread-safe: the loop writes, the test reads).</summary>
internal sealed class FrameRecorder : ICaptureSink
{
    private readonly List<(long Timestamp, byte[] Data, string? Comment)> _frames = new();

    public int AddInterface(string name, int snapLength = PcapNgWriter.DefaultSnapLength) => 0;

    public void Record(int interfaceId, long timestamp, PacketDirection direction, ReadOnlySpan<byte> frame, ReadOnlySpan<char> comment)
    {
        lock (_frames) _frames.Add((timestamp, frame.ToArray(), comment.IsEmpty ? null : comment.ToString()));
    }

    /// <summary>TCP segments as (source address, flags, payload length, comment), in order.</summary>
    public List<(Ipv4Address Source, TcpFlags Flags, int Length, string? Comment)> TcpSegments() =>
        Segments().Select(s => (s.Source, s.Header.Flags, s.Length, s.Comment)).ToList();

    /// <summary>TCP segments with their capture time (ns), addresses and parsed header, in order.</summary>
    public List<TapSegment> Segments()
    {
        lock (_frames)
        {
            var segments = new List<TapSegment>();
            foreach (var (timestamp, data, comment) in _frames)
            {
                if (EthernetFrame.TryParse(data, out EthernetFrame eth) != WireError.None || eth.EtherType != EtherType.Ipv4) continue;
                if (Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip) != WireError.None || ip.Protocol != IpProtocol.Tcp) continue;
                if (TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) != WireError.None) continue;
                TcpHeader.Read(tcp, out TcpHeader header);
                segments.Add(new TapSegment(timestamp, ip.Source, ip.Destination, header, tcp.Payload.Length, comment));
            }
            return segments;
        }
    }
}

/// <summary>One TCP segment seen on the TAP.</summary>
internal sealed record TapSegment(long Timestamp, Ipv4Address Source, Ipv4Address Destination, TcpHeader Header, int Length, string? Comment)
{
    public bool Is(TcpFlags exact) => Header.Flags == exact;
}
