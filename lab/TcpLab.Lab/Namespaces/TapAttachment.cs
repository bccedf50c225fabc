using TcpLab.Lab.Kernel;
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
    /// <summary>
    /// Open the TAP with IFF_VNET_HDR and checksum offload both ways plus GRO-style receive
    /// (TUN_F_CSUM | TUN_F_TSO4): the kernel hands over TCP superframes of up to 64 KiB with
    /// partial checksums, and the stack leaves its TCP checksums for the kernel to finish and
    /// sends runs of full segments as TSO superframes (unless <see cref="Faults"/> or
    /// <see cref="Capture"/> is set: those see per-segment frames).
    /// </summary>
    public bool Offload { get; init; }
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
    private readonly KernelHost _kernel;
    private bool _disposed;

    private TapAttachment(KernelHost kernel, RealTimeEventLoop loop, NetworkStack stack, FaultStage faults, TapAttachmentOptions options)
    {
        _kernel = kernel;
        Loop = loop;
        Stack = stack;
        Faults = faults;
        Options = options;
    }

    /// <summary>The namespace (lab-owned, or the user's when <see cref="TapAttachmentOptions.ExistingNamespace"/> was given).</summary>
    public NetworkNamespace Namespace => _kernel.Namespace;
    public string NamespaceName => Namespace.Name;
    public RealTimeEventLoop Loop { get; }
    public NetworkStack Stack { get; }
    public FaultStage Faults { get; }
    /// <summary>The TAP itself, under <see cref="Faults"/> (its frame and error counters).</summary>
    public TapDevice Device => _kernel.Tap;
    public TapAttachmentOptions Options { get; }
    public string DeviceName => Options.DeviceName;

    public static TapAttachment Create(TapAttachmentOptions options)
    {
        var loop = new RealTimeEventLoop();
        KernelHost? kernel = null;
        try
        {
            loop.Start();
            kernel = KernelHost.Create(loop, new KernelHostOptions
            {
                Address = options.KernelAddress,
                Mtu = options.Mtu,
                Offload = options.Offload,
                DeviceName = options.DeviceName,
                Sysctls = options.KernelSysctls,
                ExistingNamespace = options.ExistingNamespace,
            });
            TapDevice device = kernel.Tap;
            var (stack, faults) = loop.Invoke(() =>
            {
                var random = new DeterministicRandom(options.Seed);
                var stack = new NetworkStack(loop, "managed", options.Sysctls, random.Derive("managed"));
                var faultStage = new FaultStage(loop, device, options.Faults, random.Derive("faults"), options.Capture, options.DeviceName);
                stack.AddInterface(faultStage, stack.NewLocalMac(), options.ManagedAddress);
                return (stack, faultStage);
            });
            return new TapAttachment(kernel, loop, stack, faults, options);
        }
        catch
        {
            loop.Dispose();
            kernel?.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Loop.Dispose();
        _kernel.Dispose();
    }
}
