using System.Globalization;
using System.Net.Sockets;
using TcpLab.Lab.Namespaces;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Link;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Kernel;

/// <summary>How to build a kernel host: its address on the TAP, the TAP's MTU and name, and the kernel's sysctls.</summary>
public sealed record KernelHostOptions
{
    public required Ipv4Cidr Address { get; init; }
    public int Mtu { get; init; } = 1500;
    /// <summary>IFF_VNET_HDR with TUN_F_CSUM | TUN_F_TSO4, and TSO superframes on send (see <see cref="Namespaces.TapAttachmentOptions.Offload"/>).</summary>
    public bool Offload { get; init; }
    public string DeviceName { get; init; } = "tl0";
    /// <summary>Set in the namespace before the address goes up ("net.ipv4.tcp_syn_retries", "2").</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Sysctls { get; init; } = [];
    /// <summary>An existing namespace to use (left in place on exit); null makes a lab-owned one.</summary>
    public string? ExistingNamespace { get; init; }
}

/// <summary>
/// The real Linux kernel as a host of the lab: a network namespace (lab-owned unless given)
/// whose only interface is a TAP device. The kernel's end of the TAP holds the host's address;
/// the lab holds the other end as an <see cref="ILink"/> (<see cref="Tap"/>), so whatever the lab
/// plugs it into (a managed stack, the lab's wire) is on the kernel's Ethernet segment.
/// Applications of this host are ordinary sockets created in the namespace.
/// </summary>
public sealed class KernelHost : IDisposable
{
    private bool _disposed;

    private const int IpProtoTcp = 6;
    private const int TcpCongestion = 13;   // TCP_CONGESTION
    private const string CongestionControlKey = "net.ipv4.tcp_congestion_control";

    private KernelHost(NetworkNamespace ns, TapDevice tap, KernelHostOptions options, MacAddress mac, string? socketCongestionControl)
    {
        Namespace = ns;
        Tap = tap;
        Options = options;
        Mac = mac;
        SocketCongestionControl = socketCongestionControl;
    }

    /// <summary>
    /// The congestion control every socket of this host selects with TCP_CONGESTION, when the
    /// namespace could not make it its default (see <see cref="Configure"/>); null otherwise.
    /// </summary>
    public string? SocketCongestionControl { get; }

    public NetworkNamespace Namespace { get; }
    /// <summary>The lab's end of the TAP device, on the loop it was created with.</summary>
    public TapDevice Tap { get; }
    public KernelHostOptions Options { get; }
    /// <summary>The MAC of the kernel's end of the TAP.</summary>
    public MacAddress Mac { get; }
    public Ipv4Address Address => Options.Address.Address;

    /// <summary>Makes the namespace (removing stale lab namespaces first), the TAP in it, and configures the kernel's side.</summary>
    public static KernelHost Create(RealTimeEventLoop loop, KernelHostOptions options)
    {
        NetworkNamespace.CleanupStale();
        NetworkNamespace ns = options.ExistingNamespace is { } existing ? NetworkNamespace.Existing(existing) : NetworkNamespace.Create();
        TapDevice? tap = null;
        try
        {
            var tapOptions = new TapOptions
            {
                Mtu = options.Mtu,
                VnetHeader = options.Offload,
                Offloads = options.Offload ? LinkOffloads.RxOffload | LinkOffloads.TxChecksum | LinkOffloads.TxTcpSegmentation : LinkOffloads.None,
            };
            tap = TapDevice.OpenInNamespace(ns.Path, options.DeviceName, tapOptions, loop, new PacketBufferPool(TapDevice.ReceiveBufferSize(tapOptions)));
            string? socketCongestionControl = Configure(ns, options);
            return new KernelHost(ns, tap, options, ReadMac(ns, options.DeviceName), socketCongestionControl);
        }
        catch
        {
            tap?.Dispose();
            ns.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The kernel's end of the TAP: sysctls, its address, up, IPv6 off (no router solicitations
    /// in the captures). Returns the congestion control its sockets must select themselves.
    /// </summary>
    /// <remarks>
    /// A namespace other than the initial one may make only an allowed congestion control its
    /// default (tcp_set_default_congestion_control: EPERM for one outside
    /// net.ipv4.tcp_allowed_congestion_control, a host-wide list the lab leaves alone). A socket
    /// of a process with CAP_NET_ADMIN may select any available one (tcp_set_congestion_control),
    /// so for such an algorithm every socket the lab creates on this host selects it with
    /// TCP_CONGESTION, which is what the namespace's default would have given them.
    /// </remarks>
    private static string? Configure(NetworkNamespace ns, KernelHostOptions options)
    {
        string Read(string key) => ns.Exec("sysctl", "-n", key) is { Succeeded: true } r ? r.StandardOutput.Trim()
            : throw new InvalidOperationException($"in namespace {ns.Name}: cannot read {key}");
        void Sysctl(string key, string value)
        {
            CommandResult result = ns.Exec("sysctl", "-q", "-w", $"{key}={value}");
            if (!result.Succeeded) throw new KernelSetupException($"the kernel refused {key}={value} in a network namespace: {result.StandardError.Trim()}");
        }
        Sysctl($"net.ipv6.conf.{options.DeviceName}.disable_ipv6", "1");
        string? socketCongestionControl = null;
        foreach (var (key, value) in options.Sysctls)
        {
            if (key == CongestionControlKey && !Read("net.ipv4.tcp_allowed_congestion_control").Split(' ').Contains(value))
            {
                if (!Read("net.ipv4.tcp_available_congestion_control").Split(' ').Contains(value))
                    throw new InvalidOperationException($"{key}={value}: this kernel has no such congestion control (available: {Read("net.ipv4.tcp_available_congestion_control")})");
                socketCongestionControl = value;
                continue;
            }
            Sysctl(key, value);
        }
        ns.Run("addr", "add", options.Address.ToString(), "dev", options.DeviceName);
        ns.Run("link", "set", "lo", "up");
        ns.Run("link", "set", options.DeviceName, "up");
        return socketCongestionControl;
    }

    private static MacAddress ReadMac(NetworkNamespace ns, string device)
    {
        // `ip -br link`: "tl0  UNKNOWN  6a:1f:...:02 <BROADCAST,...>"
        string[] words = ns.Run("-br", "link", "show", "dev", device).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length >= 3 && MacAddress.TryParse(words[2], out MacAddress mac) ? mac
            : throw new InvalidOperationException($"cannot read the MAC of {device} in {ns.Name}");
    }

    /// <summary>
    /// An IPv4 TCP socket of this kernel (a socket belongs to the namespace it is created in),
    /// with the host's congestion control if it must select it itself. A listener's choice is
    /// inherited by the connections it accepts (tcp_ca_openreq_child).
    /// </summary>
    public Socket CreateTcpSocket()
    {
        Socket socket = NetworkNamespaceThread.Run(Namespace.Path, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        if (SocketCongestionControl is { } name)
            socket.SetRawSocketOption(IpProtoTcp, TcpCongestion, System.Text.Encoding.ASCII.GetBytes(name));
        return socket;
    }

    /// <summary>`ss -tanoi` in the namespace: the kernel's own view of its sockets.</summary>
    public string SocketTable() => Namespace.Exec("ss", "-tanoi").StandardOutput;

    /// <summary>
    /// The kernel's SNMP and extended counters under nstat's names (TcpActiveOpens,
    /// TcpExtTCPTimeouts, ...), from the namespace's /proc/net/snmp and /proc/net/netstat.
    /// </summary>
    public Dictionary<string, long> Counters()
    {
        var counters = new Dictionary<string, long>();
        CommandResult tables = Namespace.Exec("cat", "/proc/net/snmp", "/proc/net/netstat");
        if (!tables.Succeeded) throw new InvalidOperationException(tables.Describe());
        string[] lines = tables.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // Each table is a header line ("Tcp: RtoAlgorithm RtoMin ...") followed by its values ("Tcp: 1 200 ...").
        for (int i = 0; i + 1 < lines.Length; i += 2)
        {
            string[] names = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string[] values = lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string prefix = names[0].TrimEnd(':');
            for (int j = 1; j < names.Length && j < values.Length; j++)
            {
                if (long.TryParse(values[j], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
                    counters[prefix + names[j]] = value;
            }
        }
        return counters;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Tap.Dispose();
        Namespace.Dispose();
    }
}

/// <summary>The kernel host could not be set up as the scenario asks (a sysctl it refuses, a missing tool): the user's to fix.</summary>
public sealed class KernelSetupException(string message) : Exception(message);
