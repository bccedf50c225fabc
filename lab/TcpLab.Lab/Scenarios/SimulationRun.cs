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
        string directory = ArtifactDirectory(scenario, variant, options);
        Directory.CreateDirectory(directory);
        var addresses = scenario.Hosts.ToDictionary(h => h.Name, h => h.Address.Address);
        var record = new RunRecord(addresses);

        using (FileStream pcap = File.Create(Path.Combine(directory, "capture.pcapng")))
        {
            var wire = WireOptions.Default with
            {
                Delay = scenario.Wire.Delay,
                RateBitsPerSecond = scenario.Wire.RateBitsPerSecond,
                QueueLimitFrames = scenario.Wire.QueueLimitFrames,
            };
            var writer = new PcapNgWriter(pcap, leaveOpen: true);
            var sink = new RecordingSink(writer, record, SimulatedEventLoop.DefaultEpoch);
            var lab = new SimulatedLab(options.Seed, wire, scenario.Faults.Select(f => f.Rule).ToList(), sink);
            var stacks = new Dictionary<string, NetworkStack>();
            foreach (HostSpec host in scenario.Hosts)
            {
                NetworkStack stack = lab.AddHost(host.Name, host.Address, SysctlsFor(host.Name, variant, options.Overrides));
                string name = host.Name;
                stack.Tcp.StateChanged += change => record.States.Add(new StateEvent(change.At - Instant.Zero, name, change.Tuple, change.ConnectionId, change.From, change.To));
                stacks.Add(host.Name, stack);
            }
            var injector = new SegmentInjector(lab.Wire);
            var applications = new ManagedApplications(stacks, record, lab.Loop, segment =>
            {
                NetworkStack target = stacks.Values.First(h => h.Interfaces[0].Address.Address == segment.To);
                injector.Send(segment.From, segment.To, target.Interfaces[0].Mac, segment.ToHeader());
            });
            applications.Schedule(scenario.Steps);
            foreach (TimeSpan at in scenario.Snapshots)
                lab.Loop.CreateTimer(() => TakeSnapshots(stacks, record, at)).Arm(Instant.Zero + at);

            lab.Loop.RunUntil(Instant.Zero + scenario.Duration);

            foreach (var (name, stack) in stacks)
                record.Counters[name] = stack.Counters.NonZero().ToDictionary(c => c.Key, c => c.Value);
            TakeSnapshots(stacks, record, scenario.Duration);
            writer.Dispose();
        }

        var results = variant.Expectations.Select(e => e.Check(record)).ToList();
        var result = new ScenarioResult(scenario.Name, variant.Name, "simulation", results, directory, scenario.Duration, wall.Elapsed);
        Artifacts.Write(scenario, variant, record, result);
        return result;
    }

    /// <summary>DIR/NAME/VARIANT (document or current-kernel).</summary>
    public static string ArtifactDirectory(Scenario scenario, Variant variant, RunOptions options) =>
        Path.Combine(options.OutputDirectory, scenario.Name, variant.Name);

    /// <summary>Kernel defaults, then the variant's "all" and per-host sysctls, then the user's overrides.</summary>
    public static Sysctls SysctlsFor(string host, Variant variant, SysctlOverrides overrides)
    {
        var sysctls = new Sysctls();
        foreach (string scope in new[] { "all", host })
            if (variant.Sysctls.TryGetValue(scope, out var values))
                foreach (var (key, value) in values) SysctlRegistry.Set(sysctls, key, value);
        return overrides.For(host, sysctls);
    }

    private static void TakeSnapshots(Dictionary<string, NetworkStack> stacks, RunRecord record, TimeSpan at)
    {
        foreach (var (name, stack) in stacks)
            record.Snapshots.Add((at, name, SocketTable.Format(SocketTable.Snapshot(stack))));
    }

    /// <summary>Writes the pcapng and keeps every frame, decoded, for the expectations.</summary>
    private sealed class RecordingSink(ICaptureSink inner, RunRecord record, DateTimeOffset epoch) : ICaptureSink
    {
        private readonly long _epochNs = CaptureTime.UnixNanoseconds(epoch);

        public int AddInterface(string name, int snapLength = PcapNgWriter.DefaultSnapLength) => inner.AddInterface(name, snapLength);

        public void Record(int interfaceId, long timestamp, PacketDirection direction, ReadOnlySpan<byte> frame, ReadOnlySpan<char> comment)
        {
            inner.Record(interfaceId, timestamp, direction, frame, comment);
            record.Frames.Add(new RecordedFrame(TimeSpan.FromTicks((timestamp - _epochNs) / 100), timestamp, frame.ToArray(),
                                                comment.IsEmpty ? null : comment.ToString()));
        }
    }
}
