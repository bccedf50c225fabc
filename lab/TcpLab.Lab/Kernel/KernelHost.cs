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
    /// <summary>IFF_VNET_HDR with TUN_F_CSUM | TUN_F_TSO4 (see <see cref="Namespaces.TapAttachmentOptions.Offload"/>).</summary>
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

    private KernelHost(NetworkNamespace ns, TapDevice tap, KernelHostOptions options, MacAddress mac)
    {
        Namespace = ns;
        Tap = tap;
        Options = options;
        Mac = mac;
    }

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
                Offloads = options.Offload ? LinkOffloads.RxOffload | LinkOffloads.TxChecksum : LinkOffloads.None,
            };
            tap = TapDevice.OpenInNamespace(ns.Path, options.DeviceName, tapOptions, loop, new PacketBufferPool(TapDevice.ReceiveBufferSize(tapOptions)));
            Configure(ns, options);
            return new KernelHost(ns, tap, options, ReadMac(ns, options.DeviceName));
        }
        catch
        {
            tap?.Dispose();
            ns.Dispose();
            throw;
        }
    }

    /// <summary>The kernel's end of the TAP: sysctls, its address, up, IPv6 off (no router solicitations in the captures).</summary>
    private static void Configure(NetworkNamespace ns, KernelHostOptions options)
    {
        void Sysctl(string key, string value)
        {
            CommandResult result = ns.Exec("sysctl", "-q", "-w", $"{key}={value}");
            if (!result.Succeeded) throw new KernelSetupException($"the kernel refused {key}={value} in a network namespace: {result.StandardError.Trim()}");
        }
        Sysctl($"net.ipv6.conf.{options.DeviceName}.disable_ipv6", "1");
        foreach (var (key, value) in options.Sysctls) Sysctl(key, value);
        ns.Run("addr", "add", options.Address.ToString(), "dev", options.DeviceName);
        ns.Run("link", "set", "lo", "up");
        ns.Run("link", "set", options.DeviceName, "up");
    }

    private static MacAddress ReadMac(NetworkNamespace ns, string device)
    {
        // `ip -br link`: "tl0  UNKNOWN  6a:1f:...:02 <BROADCAST,...>"
        string[] words = ns.Run("-br", "link", "show", "dev", device).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length >= 3 && MacAddress.TryParse(words[2], out MacAddress mac) ? mac
            : throw new InvalidOperationException($"cannot read the MAC of {device} in {ns.Name}");
    }

    /// <summary>An IPv4 TCP socket of this kernel (a socket belongs to the namespace it is created in).</summary>
    public Socket CreateTcpSocket() =>
        NetworkNamespaceThread.Run(Namespace.Path, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));

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
