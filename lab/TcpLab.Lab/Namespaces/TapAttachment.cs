using TcpLab.Stack;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Namespaces;

/// <summary>What to build: addresses on both sides of the TAP, and the managed host's settings.</summary>
public sealed record TapAttachmentOptions
{
    public Ipv4Cidr ManagedAddress { get; init; } = Ipv4Cidr.Parse("10.77.0.2/24");
    public Ipv4Cidr KernelAddress { get; init; } = Ipv4Cidr.Parse("10.77.0.1/24");
    public int Mtu { get; init; } = 1500;
    /// <summary>An existing namespace to attach to (left in place on exit); null makes a lab-owned one.</summary>
    public string? ExistingNamespace { get; init; }
    public string DeviceName { get; init; } = "tl0";
    public Sysctls Sysctls { get; init; } = new();
    /// <summary>Kernel sysctls for the namespace's Linux side ("net.ipv4.tcp_syn_retries=2").</summary>
    public IReadOnlyList<KeyValuePair<string, string>> KernelSysctls { get; init; } = [];
    public IReadOnlyList<FaultRule> Faults { get; init; } = [];
    public ICaptureSink? Capture { get; init; }
    public ulong Seed { get; init; } = (ulong)Environment.TickCount64;
}

/// <summary>
/// A managed host facing the real Linux kernel: a network namespace (lab-owned unless given),
/// a TAP device in it whose kernel side holds <see cref="TapAttachmentOptions.KernelAddress"/>,
/// and a <see cref="NetworkStack"/> on a real-time loop behind the TAP, with the fault stage
/// and capture between them. Dispose removes all of it; a crash leaves at most a namespace
/// that the next start's stale cleanup removes.
/// </summary>
public sealed class TapAttachment : IDisposable
{
    private readonly TapDevice _tap;
    private bool _disposed;

    private TapAttachment(NetworkNamespace ns, RealTimeEventLoop loop, TapDevice tap, NetworkStack stack, FaultStage faults, TapAttachmentOptions options)
    {
        Namespace = ns;
        Loop = loop;
        _tap = tap;
        Stack = stack;
        Faults = faults;
        Options = options;
    }

    /// <summary>The namespace (lab-owned, or the user's when <see cref="TapAttachmentOptions.ExistingNamespace"/> was given).</summary>
    public NetworkNamespace Namespace { get; }
    public string NamespaceName => Namespace.Name;
    public RealTimeEventLoop Loop { get; }
    public NetworkStack Stack { get; }
    public FaultStage Faults { get; }
    public TapAttachmentOptions Options { get; }
    public string DeviceName => Options.DeviceName;

    public static TapAttachment Create(TapAttachmentOptions options)
    {
        NetworkNamespace.CleanupStale();
        NetworkNamespace ns = options.ExistingNamespace is { } existing ? NetworkNamespace.Existing(existing) : NetworkNamespace.Create();
        var loop = new RealTimeEventLoop();
        TapDevice? tap = null;
        try
        {
            loop.Start();
            var tapOptions = new TapOptions { Mtu = options.Mtu };
            var receivePool = new PacketBufferPool(TapDevice.ReceiveBufferSize(tapOptions));
            tap = TapDevice.OpenInNamespace(ns.Path, options.DeviceName, tapOptions, loop, receivePool);
            ConfigureKernelSide(ns, options);
            TapDevice device = tap;
            var (stack, faults) = loop.Invoke(() =>
            {
                var random = new DeterministicRandom(options.Seed);
                var stack = new NetworkStack(loop, "managed", options.Sysctls, random.Derive("managed"));
                var faultStage = new FaultStage(loop, device, options.Faults, random.Derive("faults"), options.Capture, options.DeviceName);
                stack.AddInterface(faultStage, stack.NewLocalMac(), options.ManagedAddress);
                return (stack, faultStage);
            });
            return new TapAttachment(ns, loop, tap, stack, faults, options);
        }
        catch
        {
            loop.Dispose();
            tap?.Dispose();
            ns.Dispose();
            throw;
        }
    }

    /// <summary>The kernel's end of the TAP: its address, up, IPv6 off (no router solicitations in the captures), sysctls.</summary>
    private static void ConfigureKernelSide(NetworkNamespace ns, TapAttachmentOptions options)
    {
        void Sysctl(string assignment)
        {
            CommandResult result = ns.Exec("sysctl", "-q", "-w", assignment);
            if (!result.Succeeded) throw new InvalidOperationException($"in namespace {ns.Name}: {result.Describe()}");
        }
        Sysctl($"net.ipv6.conf.{options.DeviceName}.disable_ipv6=1");
        foreach (var (key, value) in options.KernelSysctls) Sysctl($"{key}={value}");
        ns.Run("addr", "add", options.KernelAddress.ToString(), "dev", options.DeviceName);
        ns.Run("link", "set", "lo", "up");
        ns.Run("link", "set", options.DeviceName, "up");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Loop.Dispose();
        _tap.Dispose();
        Namespace.Dispose();
    }
}
