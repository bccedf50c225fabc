using System.Diagnostics;
using TcpLab.Lab.Hosting;
using TcpLab.Lab.Simulation;
using TcpLab.Stack;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Scenarios;

/// <summary>How a run is done and where its artifacts go.</summary>
public sealed record RunOptions(ulong Seed, string OutputDirectory, SysctlOverrides Overrides);

/// <summary>One run of one variant of a scenario: every expectation's outcome and where the artifacts are.</summary>
public sealed record ScenarioResult(string Scenario, string Variant, string Mode, IReadOnlyList<ExpectationResult> Expectations,
                                    string ArtifactDirectory, TimeSpan ExperimentTime, TimeSpan WallTime, string? Failure = null)
{
    /// <summary>The scenario's word on how a run against the kernel differs (only for such runs).</summary>
    public string? LinuxNotes { get; init; }

    public bool Passed => Failure is null && Expectations.All(e => e.Passed);
}

/// <summary>
/// Runs a scenario with every host managed, on a simulated wire in virtual time: deterministic
/// (the same seed gives a byte-identical capture), and as fast as the machine can go.
/// </summary>
public static class SimulationRun
{
    public static ScenarioResult Run(Scenario scenario, Variant variant, RunOptions options)
    {
        var wall = Stopwatch.StartNew();
        string directory = RunSupport.ArtifactDirectory(scenario, variant, "simulation", options);
        var record = new RunRecord(scenario.Hosts.ToDictionary(h => h.Name, h => h.Address.Address));
        using (PcapNgWriter writer = PcapNgWriter.Create(Path.Combine(directory, "capture.pcapng")))
        {
            var sink = new RecordingSink(writer, record, SimulatedEventLoop.DefaultEpoch);
            var lab = new SimulatedLab(options.Seed, RunSupport.WireOptionsOf(scenario), scenario.Faults.Select(f => f.Rule).ToList(), sink);
            var stacks = new Dictionary<string, NetworkStack>();
            foreach (HostSpec host in scenario.Hosts)
            {
                NetworkStack stack = lab.AddHost(host.Name, host.Address, RunSupport.SysctlsFor(host.Name, variant, options.Overrides),
                                                 port: RunSupport.PortOptionsOf(scenario, host));
                RunSupport.RecordStates(stack, host.Name, record, () => Instant.Zero);
                stacks.Add(host.Name, stack);
            }
            SegmentInjector injector = RunSupport.CreateInjector(lab.Wire, scenario);
            var applications = new ManagedApplications(stacks, record, lab.Loop, Instant.Zero);
            var scheduler = new StepScheduler(lab.Loop, Instant.Zero, record, _ => applications, segment =>
            {
                NetworkStack target = stacks.Values.First(h => h.Interfaces[0].Address.Address == segment.To);
                injector.Send(segment.From, segment.To, target.Interfaces[0].Mac, segment.ToHeader());
            }, new DeterministicRandom(options.Seed).Derive("steps"));
            scheduler.Schedule(scenario.Steps);
            foreach (TimeSpan at in scenario.Snapshots)
                lab.Loop.CreateTimer(() => RunSupport.TakeSnapshots(stacks, record, at)).Arm(Instant.Zero + at);

            lab.Loop.RunUntil(Instant.Zero + scenario.Duration);

            RunSupport.RecordCounters(stacks, record);
            RunSupport.TakeSnapshots(stacks, record, scenario.Duration);
        }

        return RunSupport.Finish(scenario, variant, "simulation", record, directory, wall.Elapsed);
    }
}

/// <summary>What the simulated and the kernel runs do alike: settings, records, snapshots, results and artifacts.</summary>
internal static class RunSupport
{
    /// <summary>
    /// DIR/NAME for the documents' variant in simulation (the run a reader looks for first);
    /// other runs below it: DIR/NAME/current-kernel, DIR/NAME/linux, DIR/NAME/current-kernel-linux,
    /// DIR/NAME/both-linux ...
    /// </summary>
    public static string ArtifactDirectory(Scenario scenario, Variant variant, string mode, RunOptions options)
    {
        string[] parts = new[] { variant == scenario.Document ? null : variant.Name, mode == "simulation" ? null : mode }.OfType<string>().ToArray();
        string directory = Path.Combine(options.OutputDirectory, scenario.Name, string.Join('-', parts));
        Directory.CreateDirectory(directory);
        return directory;
    }

    /// <summary>The lab's port for crafted segments, standing in for the spoofed addresses of the scenario's floods.</summary>
    public static SegmentInjector CreateInjector(SimulatedWire wire, Scenario scenario)
    {
        var injector = new SegmentInjector(wire);
        foreach (FloodStep flood in scenario.Steps.OfType<FloodStep>().Where(f => f.StandIn)) injector.StandInFor(flood.From);
        return injector;
    }

    public static WireOptions WireOptionsOf(Scenario scenario) => WireOptions.Default with
    {
        Delay = scenario.Wire.Delay,
        RateBitsPerSecond = scenario.Wire.RateBitsPerSecond,
        QueueLimitFrames = scenario.Wire.QueueLimitFrames,
        Mtu = scenario.Wire.Mtu,
    };

    /// <summary>The wire towards one host: the wire's options with the host's MTU (frames larger than it are dropped on the way, as its NIC would).</summary>
    public static WireOptions PortOptionsOf(Scenario scenario, HostSpec host) => WireOptionsOf(scenario) with { Mtu = scenario.MtuOf(host) };

    /// <summary>Kernel defaults, then the variant's "all" and per-host sysctls, then the user's overrides.</summary>
    public static Sysctls SysctlsFor(string host, Variant variant, SysctlOverrides overrides)
    {
        var sysctls = new Sysctls();
        foreach (var (key, value) in VariantSysctls(host, variant)) SysctlRegistry.Set(sysctls, key, value);
        return overrides.For(host, sysctls);
    }

    /// <summary>The sysctls the variant and the user set for a host, in the order they apply (for a real kernel).</summary>
    public static IEnumerable<KeyValuePair<string, string>> ExplicitSysctls(string host, Variant variant, SysctlOverrides overrides) =>
        VariantSysctls(host, variant).Concat(overrides.Settings.Where(s => s.Host is null || s.Host == host)
                                                                .Select(s => KeyValuePair.Create(s.Key, s.Value)));

    private static IEnumerable<KeyValuePair<string, string>> VariantSysctls(string host, Variant variant)
    {
        foreach (string scope in new[] { "all", host })
            if (variant.Sysctls.TryGetValue(scope, out var values))
                foreach (var pair in values) yield return pair;
    }

    /// <param name="origin">The run's time 0 (read at each change: a real-time run sets it once the lab is built).</param>
    public static void RecordStates(NetworkStack stack, string host, RunRecord record, Func<Instant> origin) =>
        stack.Tcp.StateChanged += change => record.AddState(new StateEvent(change.At - origin(), host, change.Tuple, change.ConnectionId, change.From, change.To));

    public static void RecordCounters(IReadOnlyDictionary<string, NetworkStack> stacks, RunRecord record)
    {
        foreach (var (name, stack) in stacks)
            record.Counters[name] = stack.Counters.NonZero().ToDictionary(c => c.Key, c => c.Value);
    }

    public static void TakeSnapshots(IReadOnlyDictionary<string, NetworkStack> stacks, RunRecord record, TimeSpan at)
    {
        foreach (var (name, stack) in stacks)
            record.Snapshots.Add((at, name, SocketTable.Format(SocketTable.Snapshot(stack))));
    }

    public static ScenarioResult Finish(Scenario scenario, Variant variant, string mode, RunRecord record, string directory, TimeSpan wall, string? failure = null)
    {
        var results = variant.Expectations.Select(e => e.Check(record)).ToList();
        if (record.StepFailures.Count > 0) failure = string.Join("; ", record.StepFailures.Prepend(failure).OfType<string>());
        var result = new ScenarioResult(scenario.Name, variant.Name, mode, results, directory, scenario.Duration, wall, failure)
        {
            LinuxNotes = record.AgainstKernel ? scenario.LinuxNotes : null,
        };
        Artifacts.Write(scenario, variant, record, result);
        return result;
    }
}

/// <summary>Writes the pcapng and keeps every frame, decoded, for the expectations; times count from the run's origin.</summary>
internal sealed class RecordingSink(ICaptureSink inner, RunRecord record, DateTimeOffset epoch) : ICaptureSink
{
    private long _originNs = CaptureTime.UnixNanoseconds(epoch);

    /// <summary>The run's time 0 on the loop's clock (Instant.Zero unless set before the first frame).</summary>
    public Instant Origin
    {
        set => _originNs = CaptureTime.UnixNanoseconds(epoch) + value.Nanoseconds;
    }

    public int AddInterface(string name, int snapLength = PcapNgWriter.DefaultSnapLength) => inner.AddInterface(name, snapLength);

    public void Record(int interfaceId, long timestamp, PacketDirection direction, ReadOnlySpan<byte> frame, ReadOnlySpan<char> comment)
    {
        inner.Record(interfaceId, timestamp, direction, frame, comment);
        record.Frames.Add(new RecordedFrame(TimeSpan.FromTicks((timestamp - _originNs) / 100), timestamp, frame.ToArray(),
                                            comment.IsEmpty ? null : comment.ToString()));
    }
}
