using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Net;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack;

/// <summary>
/// One host: its interfaces, IPv4, ICMP and TCP, its sysctls, counters and random source, all
/// living on one <see cref="EventLoop"/>. Every method must be called on that loop (the socket
/// API takes care of this for application code).
/// </summary>
public sealed class NetworkStack
{
    private readonly List<NetworkInterface> _interfaces = new();
    private readonly Dictionary<int, PacketBufferPool> _poolsByMtu = new();
    private PacketBufferPool? _superframePool;

    /// <param name="name">How the lab names this host ("client", "server").</param>
    /// <param name="sysctls">This host's kernel parameters (copied: later changes to the argument do not apply).</param>
    /// <param name="random">The host's random stream; in simulation derive it from the run's seed.</param>
    public NetworkStack(EventLoop loop, string name, Sysctls? sysctls = null, DeterministicRandom? random = null)
    {
        Loop = loop;
        Name = name;
        Sysctls = sysctls?.Clone() ?? new Sysctls();
        Random = random ?? new DeterministicRandom(BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)));
        Ip = new Ipv4Layer(this);
        Icmp = new IcmpLayer(this);
        Ip.Register(IpProtocol.Icmp, Icmp);
        Tcp = new TcpLayer(this);
        Ip.Register(IpProtocol.Tcp, Tcp);
    }

    public string Name { get; }
    public EventLoop Loop { get; }
    public Sysctls Sysctls { get; }
    public Counters Counters { get; } = new();
    public DeterministicRandom Random { get; }
    public Ipv4Layer Ip { get; }
    public IcmpLayer Icmp { get; }
    public TcpLayer Tcp { get; }
    public IReadOnlyList<NetworkInterface> Interfaces => _interfaces;

    /// <summary>Where datagrams for off-link destinations go (must be on an interface's subnet).</summary>
    public Ipv4Address? DefaultGateway { get; set; }

    /// <summary>Attaches a link with our MAC and address on it. The stack becomes the link's frame handler.</summary>
    public NetworkInterface AddInterface(ILink link, MacAddress mac, Ipv4Cidr address)
    {
        int mtu = link.Info.Mtu;
        if (!_poolsByMtu.TryGetValue(mtu, out PacketBufferPool? pool))
        {
            pool = PacketBufferPool.ForMtu(mtu);
            _poolsByMtu.Add(mtu, pool);
        }
        // A link that splits TCP superframes needs buffers for them (up to 64 KiB of IP datagram);
        // one pool serves all such interfaces, everything else keeps MTU-sized buffers.
        PacketBufferPool? superframePool = null;
        if ((link.Info.Offloads & NetworkInterface.SegmentationOffloads) == NetworkInterface.SegmentationOffloads)
            superframePool = _superframePool ??= new PacketBufferPool(NetworkInterface.SuperframeBufferSize, maxFree: 256);
        var networkInterface = new NetworkInterface(this, link, mac, address, pool, superframePool);
        _interfaces.Add(networkInterface);
        return networkInterface;
    }

    /// <summary>A random locally administered unicast MAC (02:xx:xx:xx:xx:xx), from this host's random stream.</summary>
    public MacAddress NewLocalMac() => new((Random.NextUInt64() & 0x0000_00FF_FFFF_FFFFUL) | 0x0000_0200_0000_0000UL);

    public override string ToString() => Name;
}
