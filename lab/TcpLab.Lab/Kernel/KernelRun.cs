using System.Diagnostics;
using TcpLab.Lab.Scenarios;
using TcpLab.Stack;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Kernel;

/// <summary>Who plays the hosts of a run.</summary>
public enum PeerMode
{
    /// <summary>Every host managed, in simulation and virtual time (the default).</summary>
    Managed,
    /// <summary>The scenario's Linux side (the server, unless it says otherwise) is the real kernel; the rest managed, in real time.</summary>
    Linux,
    /// <summary>Every host is the real kernel, the lab only the wire between them: the reference run.</summary>
    BothLinux,
}

/// <summary>
/// Runs a scenario in real time with some or all hosts played by the Linux kernel, each in a
/// fresh network namespace behind a TAP device. The lab is the Ethernet segment: its wire
/// (the simulated switch, on a real-time loop) joins managed stacks and the TAP devices, and
/// the first host's link carries the fault stage and the capture as in simulation. Kernel
/// hosts get the scenario's sysctls in their namespace and run its steps with ordinary
/// sockets; their states come from the kernel's own tracepoint.
/// </summary>
public static class KernelRun
{
    /// <summary>Time between building the lab and the scenario's time 0, so the first step is not late.</summary>
    private static readonly TimeSpan Lead = TimeSpan.FromMilliseconds(20);

    /// <summary>Why runs against the kernel cannot happen here, or null.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "needs Linux";
        if (Environment.UserName != "root" && !HasNetAdmin()) return "needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) for namespaces and TAP devices";
        if (!File.Exists("/dev/net/tun")) return "needs /dev/net/tun";
        return KernelStateTracker.Unavailable();
    }

    public static IReadOnlySet<string> KernelHostsOf(Scenario scenario, PeerMode mode) => mode switch
    {
        PeerMode.BothLinux => scenario.Hosts.Select(h => h.Name).ToHashSet(),
        PeerMode.Linux => scenario.Hosts.Where(h => h.Kind == HostKind.Linux || h.Name == scenario.LinuxSide).Select(h => h.Name).ToHashSet(),
        _ => new HashSet<string>(),
    };

    /// <summary>
    /// The scenario's and the command line's net.* sysctls for a kernel host, and the congestion
    /// control pinned to a current kernel's default (CUBIC) unless they name one: a new namespace
    /// inherits the machine's own default (BBR on some hosts), which would make the same run
    /// differ from machine to machine.
    /// </summary>
    private static List<KeyValuePair<string, string>> KernelSysctls(string host, Variant variant, RunOptions options)
    {
        const string CongestionControl = "net.ipv4.tcp_congestion_control";
        var sysctls = RunSupport.ExplicitSysctls(host, variant, options.Overrides).Where(s => s.Key.StartsWith("net.", StringComparison.Ordinal)).ToList();
        if (!sysctls.Any(s => s.Key == CongestionControl))
            sysctls.Add(new(CongestionControl, new Sysctls().TcpCongestionControl));
        return sysctls;
    }

    public static string ModeName(PeerMode mode) => mode switch
    {
        PeerMode.Linux => "linux",
        PeerMode.BothLinux => "both-linux",
        _ => "simulation",
    };

    /// <param name="progress">Told the fraction of the experiment's time elapsed, now and then.</param>
    /// <param name="stop">Ends the experiment early (Ctrl+C, SIGTERM): the run is cleaned up and reported as interrupted.</param>
    public static ScenarioResult Run(Scenario scenario, Variant variant, RunOptions options, PeerMode mode, Action<double>? progress = null,
                                     CancellationToken stop = default)
    {
        if (Unavailable() is { } why) throw new InvalidOperationException($"cannot run against the Linux kernel: {why}");
        EnsureThreadPoolHeadroom();
        WarmUp(options);
        using KernelRunLock runLock = KernelRunLock.Acquire(scenario.Hosts.Select(h => h.Address.Address),
            () => Console.Error.WriteLine("tcplab: waiting for another run against the kernel on the same addresses to finish"));
        var wall = Stopwatch.StartNew();
        string modeName = ModeName(mode);
        string directory = RunSupport.ArtifactDirectory(scenario, variant, modeName, options);
        IReadOnlySet<string> kernelNames = KernelHostsOf(scenario, mode);
        var record = new RunRecord(scenario.Hosts.ToDictionary(h => h.Name, h => h.Address.Address), kernelNames);
        var random = new DeterministicRandom(options.Seed);

        using var loop = new RealTimeEventLoop();
        loop.Start();
        var kernels = new Dictionary<string, KernelHost>();
        KernelStateTracker? tracker = null;
        KernelApplications? kernelApps = null;
        PcapNgWriter? writer = null;
        string? failure = null;
        try
        {
            foreach (HostSpec host in scenario.Hosts.Where(h => kernelNames.Contains(h.Name)))
            {
                kernels[host.Name] = KernelHost.Create(loop, new KernelHostOptions
                {
                    Address = host.Address,
                    Mtu = scenario.MtuOf(host),
                    Sysctls = KernelSysctls(host.Name, variant, options),
                });
            }

            writer = PcapNgWriter.Create(Path.Combine(directory, "capture.pcapng"));
            var sink = new RecordingSink(writer, record, loop.Epoch);
            var stacks = new Dictionary<string, NetworkStack>();
            Instant origin = default;   // set once the lab is built, just before the first step
            tracker = KernelStateTracker.Start(loop, kernels.Values, k => kernels.First(p => p.Value == k).Key, change =>
            {
                // Changes after the experiment's end are the lab closing the sockets, not the experiment.
                if (change.At - origin <= scenario.Duration)
                    record.AddState(new StateEvent(change.At - origin, change.Host, change.Tuple, change.ConnectionId, change.From, change.To));
            });

            loop.Invoke(() =>
            {
                var wire = new SimulatedWire(loop, RunSupport.WireOptionsOf(scenario));
                var macs = new Dictionary<Ipv4Address, MacAddress>();
                foreach (HostSpec host in scenario.Hosts)
                {
                    ILink link = wire.CreatePort(host.Name, RunSupport.PortOptionsOf(scenario, host));
                    if (host == scenario.Hosts[0])
                        link = new FaultStage(loop, link, scenario.Faults.Select(f => f.Rule).ToList(), random.Derive("faults"), sink, host.Name);
                    if (kernels.TryGetValue(host.Name, out KernelHost? kernel))
                    {
                        _ = new LinkBridge(kernel.Tap, link);
                        macs[host.Address.Address] = kernel.Mac;
                        continue;
                    }
                    var stack = new NetworkStack(loop, host.Name, RunSupport.SysctlsFor(host.Name, variant, options.Overrides), random.Derive("host/" + host.Name));
                    var mac = new MacAddress(0x0200_0000_0000UL + (uint)stacks.Count + 1);
                    stack.AddInterface(link, mac, host.Address);
                    RunSupport.RecordStates(stack, host.Name, record, () => origin);
                    stacks.Add(host.Name, stack);
                    macs[host.Address.Address] = mac;
                }
                SegmentInjector injector = RunSupport.CreateInjector(wire, scenario);

                origin = loop.Now + Lead;
                sink.Origin = origin;
                kernelApps = new KernelApplications(kernels, record, loop, origin);
                var managedApps = new ManagedApplications(stacks, record, loop, origin);
                var scheduler = new StepScheduler(loop, origin, record,
                    host => kernels.ContainsKey(host) ? kernelApps : managedApps,
                    segment => injector.Send(segment.From, segment.To, macs[segment.To], segment.ToHeader()),
                    random.Derive("steps"));
                scheduler.Schedule(scenario.Steps);
                foreach (TimeSpan at in scenario.Snapshots)
                    loop.CreateTimer(() => TakeSnapshots(loop, stacks, kernels, record, at)).Arm(origin + at);
            });

            failure = WaitForEnd(loop, origin, scenario.Duration, progress, stop);
            loop.Invoke(() =>
            {
                RunSupport.RecordCounters(stacks, record);
                RunSupport.TakeSnapshots(stacks, record, scenario.Duration);
            });
            foreach (var (name, kernel) in kernels)
            {
                record.Counters[name] = kernel.Counters();
                record.Snapshots.Add((scenario.Duration, name, kernel.SocketTable()));
            }
        }
        finally
        {
            // Every piece is taken down even if another fails: a namespace must not outlive the run.
            // The loop stops first: what the lab's own cleanup makes the kernels send is not the experiment's.
            Cleanup(loop.Stop);
            Cleanup(() => kernelApps?.CloseAll());
            Cleanup(() => tracker?.Dispose());
            Cleanup(() => writer?.Dispose());
            foreach (KernelHost kernel in kernels.Values) Cleanup(kernel.Dispose);
        }
        record.SortStatesByTime();
        return RunSupport.Finish(scenario, variant, modeName, record, directory, wall.Elapsed, failure);
    }

    private static int s_warmedUp;

    /// <summary>
    /// Once per process, a short exchange with the kernel that nobody sees, so that the
    /// real-time paths (TAP reads and writes, wire, capture, TCP, tracer, artifacts) are
    /// JIT-compiled before the first experiment: otherwise its first packets leave milliseconds late.
    /// </summary>
    private static void WarmUp(RunOptions options)
    {
        if (Interlocked.Exchange(ref s_warmedUp, 1) != 0) return;
        Scenario warmUp = ScenarioReader.Read(WarmUpScenario, "(warm-up)");
        DirectoryInfo directory = Directory.CreateTempSubdirectory("tcplab-warm-up-");
        try
        {
            Run(warmUp, warmUp.Document, options with { OutputDirectory = directory.FullName }, PeerMode.Linux);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    // Addresses no catalogue scenario uses, so the warm-up never waits for another process's run.
    private const string WarmUpScenario = """
        name: warm-up
        title: JIT warm-up for real-time runs
        hosts: { client: 10.254.0.1/24, server: 10.254.0.2/24 }
        steps:
          - { at: 0s, host: server, listen: 8888, accept-as: s }
          - { at: 0.01s, host: client, connect: "server:8888", as: c }
          - { at: 0.1s, send: "warm", socket: c }
          - { at: 0.2s, send: "up", socket: s }
          - { at: 0.3s, close: c }
          - { at: 0.3s, close: s }
          - { at: 0.3s, host: client, connect: "server:9", as: r }
        duration: 0.4s
        """;

    /// <summary>
    /// The kernel applications' sends are .NET's asynchronous socket sends, whose progress after
    /// the kernel's send buffer fills (EAGAIN, then EPOLLOUT) runs as thread-pool work. A caller
    /// that blocks pool threads (the test runner does; a 2-core machine starts with two) can
    /// starve it, as the pool adds threads slowly; a Linux sender then waits for its
    /// application. Under the test runner that made slow-start's Linux sender send 155 segments
    /// instead of 320 in a round, every time; with this headroom it sends 320. Keep a few
    /// threads ready.
    /// </summary>
    private static void EnsureThreadPoolHeadroom()
    {
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        int wanted = Environment.ProcessorCount + 4;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, completionPorts);
    }

    /// <summary>Sleeps until the experiment's end, reporting progress; a step that failed on the loop ends the run early.</summary>
    private static string? WaitForEnd(RealTimeEventLoop loop, Instant origin, TimeSpan duration, Action<double>? progress, CancellationToken stop)
    {
        Instant end = origin + duration;
        while (loop.Now < end)
        {
            if (loop.Completion.IsFaulted) return loop.Completion.Exception!.InnerException!.Message;
            if (stop.IsCancellationRequested) return $"interrupted at {(loop.Now - origin).TotalSeconds:0.###} s";
            progress?.Invoke(Math.Clamp((loop.Now - origin) / duration, 0, 1));
            TimeSpan left = end - loop.Now;
            Thread.Sleep(left < TimeSpan.FromMilliseconds(250) ? left : TimeSpan.FromMilliseconds(250));
        }
        progress?.Invoke(1);
        return null;
    }

    /// <summary>Managed tables on the loop; the kernel's from `ss` in its namespace, off the loop (it runs a program).</summary>
    private static void TakeSnapshots(RealTimeEventLoop loop, Dictionary<string, NetworkStack> stacks, Dictionary<string, KernelHost> kernels,
                                      RunRecord record, TimeSpan at)
    {
        RunSupport.TakeSnapshots(stacks, record, at);
        foreach (var (name, kernel) in kernels)
        {
            _ = Task.Run(() =>
            {
                string table = kernel.SocketTable();
                loop.Post(() => record.Snapshots.Add((at, name, table)));
            });
        }
    }

    private static void Cleanup(Action action)
    {
        try
        {
            action();
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"tcplab: while cleaning up: {e.Message}");
        }
    }

    private static bool HasNetAdmin()
    {
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        ulong caps = line is null ? 0 : Convert.ToUInt64(line["CapEff:".Length..].Trim(), 16);
        return (caps & (1UL << 12)) != 0 && (caps & (1UL << 21)) != 0;   // CAP_NET_ADMIN, CAP_SYS_ADMIN
    }
}
