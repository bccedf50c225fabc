using TcpLab.Integration.Tests.Support;
using TcpLab.Lab.Hosting;
using TcpLab.Lab.Kernel;
using TcpLab.Lab.Scenarios;

namespace TcpLab.Integration.Tests.Scenarios;

/// <summary>
/// Catalogue experiments against the real kernel (`tcplab run NAME --peer linux`), the short
/// ones: the same expectations that hold in simulation hold when the server is Linux, within
/// the kernel's timer granularity. The long ones run with `make linux-catalogue`.
/// </summary>
[Collection(KernelRunCollection.Name)]
public sealed class KernelRunTests : IDisposable
{
    private readonly DirectoryInfo _out = Directory.CreateTempSubdirectory("tcplab-kernel-runs-");

    public void Dispose() => _out.Delete(recursive: true);

    [KernelRunTheory]
    [InlineData("refused")]
    [InlineData("no-host")]
    [InlineData("linger-rst")]
    [InlineData("bad-flags")]
    [InlineData("accept-overflow-rst")]
    [InlineData("syn-flood")]
    [InlineData("syn-flood", "current-kernel")]
    [InlineData("fast-open")]
    [InlineData("fast-open", "current-kernel")]
    [InlineData("fast-retransmit")]
    [InlineData("fast-retransmit", "current-kernel")]
    [InlineData("fast-retransmit-nosack")]
    [InlineData("spurious-rto")]
    [InlineData("spurious-rto", "current-kernel")]
    [InlineData("zero-window")]
    [InlineData("delayed-ack")]
    [InlineData("slow-start")]
    [InlineData("slow-start", "current-kernel")]
    [InlineData("mss")]
    [InlineData("tls-burst")]
    public void A_short_experiment_meets_its_expectations_with_Linux_as_the_server(string name, string variant = "document")
    {
        ScenarioResult result = Run(name, PeerMode.Linux, variant);

        AssertPassed(result);
        Assert.DoesNotContain(NetworkNamespaces(), n => n.StartsWith($"tcplab-{Environment.ProcessId}-", StringComparison.Ordinal));
    }

    [KernelRunFact]
    public async Task SIGTERM_ends_a_run_against_the_kernel_through_its_cleanup()
    {
        using var tcplab = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(
            Path.Combine(AppContext.BaseDirectory, "tcplab"), ["run", "handshake", "--peer", "linux", "--out", _out.FullName])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        Task<string> output = tcplab.StandardOutput.ReadToEndAsync();
        string ns = $"tcplab-{tcplab.Id}-";
        try
        {
            // Wait until its namespace exists (the run is under way), then ask it to stop.
            // (Another run against the kernel on this machine makes it wait for the lock first.)
            var deadline = DateTime.UtcNow.AddMinutes(5);
            while (!NetworkNamespaces().Any(n => n.StartsWith(ns, StringComparison.Ordinal)) || !TracingInstances().Any(i => i.StartsWith(ns, StringComparison.Ordinal)))
            {
                if (DateTime.UtcNow > deadline || tcplab.HasExited) Assert.Fail("the run never got under way");
                await Task.Delay(100);
            }
            Assert.Equal(0, System.Diagnostics.Process.Start("kill", ["-TERM", tcplab.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).WaitForExitAsync().Wait(5000) ? 0 : 1);
            await tcplab.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            if (!tcplab.HasExited)
            {
                tcplab.Kill();   // our own child, by its PID
                tcplab.WaitForExit();
            }
        }

        Assert.Equal(1, tcplab.ExitCode);
        Assert.Contains("interrupted at", await output);
        Assert.DoesNotContain(NetworkNamespaces(), n => n.StartsWith(ns, StringComparison.Ordinal));
        Assert.DoesNotContain(TracingInstances(), i => i.StartsWith(ns, StringComparison.Ordinal));
    }

    private static IEnumerable<string> TracingInstances() =>
        Directory.Exists("/sys/kernel/tracing/instances") ? Directory.EnumerateDirectories("/sys/kernel/tracing/instances").Select(d => Path.GetFileName(d)) : [];

    [KernelRunFact]
    public void With_Linux_on_both_ends_the_lab_is_only_the_wire_and_causes_are_not_checked()
    {
        ScenarioResult result = Run("refused", PeerMode.BothLinux);

        AssertPassed(result);
        // The connect() SYN and Linux's [R.] were captured; the kernel says nothing about why it sent them.
        string trace = File.ReadAllText(Path.Combine(result.ArtifactDirectory, "trace.txt"));
        Assert.Contains("Flags [S]", trace);
        Assert.Contains("Flags [R.], seq 0", trace);
        Assert.DoesNotContain("# connect()", trace);
    }

    [KernelRunFact]
    public void The_kernels_states_are_followed_through_TIME_WAIT_to_CLOSED()
    {
        // A short close: Linux is the client here, so its socket holds TIME_WAIT for 60 s.
        Scenario scenario = ScenarioReader.Read("""
            name: kernel-time-wait
            title: the kernel closes first and holds TIME_WAIT
            hosts: { client: 10.0.0.1/24, server: 10.0.0.2/24 }
            linux-side: client
            wire: { delay: 1ms }
            sysctls: { client: { net.ipv4.tcp_fin_timeout: 5 } }
            steps:
              - { at: 0s, host: server, listen: 80, accept-as: s }
              - { at: 0.1s, host: client, connect: "server:80", as: c }
              - { at: 0.3s, close: c }
              - { at: 2s, close: s }
            duration: 3s
            expect:
              - states: { socket: c, path: SYN_SENT ESTABLISHED FIN_WAIT1 FIN_WAIT2 TIME_WAIT }
              - state: { socket: c, is: FIN_WAIT2, at: 1s }
              - states: { socket: s, path: SYN_RECV ESTABLISHED CLOSE_WAIT LAST_ACK CLOSED }
            """, "kernel-time-wait.yaml");

        ScenarioResult result = KernelRun.Run(scenario, scenario.Document, Options(), PeerMode.Linux);

        AssertPassed(result);
    }

    [KernelRunTheory]
    [InlineData(null, "cubic")]     // a current kernel's default, whatever this machine's own is
    [InlineData("reno", "reno")]
    public void A_kernel_hosts_connections_use_the_congestion_control_the_scenario_gives_or_CUBIC(string? named, string expected)
    {
        string sysctls = named is null ? "" : $"sysctls: {{ server: {{ net.ipv4.tcp_congestion_control: {named} }} }}";
        Scenario scenario = ScenarioReader.Read($$"""
            name: kernel-congestion-control
            title: which congestion control the kernel's connection uses
            hosts: { client: 10.0.0.1/24, server: 10.0.0.2/24 }
            {{sysctls}}
            steps:
              - { at: 0s, host: server, listen: 80, accept-as: s }
              - { at: 0.1s, host: client, connect: "server:80", as: c }
            snapshots: [0.3s]
            duration: 0.4s
            """, "kernel-congestion-control.yaml");

        ScenarioResult result = KernelRun.Run(scenario, scenario.Document, Options(), PeerMode.Linux);

        AssertPassed(result);
        // ss -tanoi in the server's namespace: the listener and the accepted connection.
        string states = File.ReadAllText(Path.Combine(result.ArtifactDirectory, "states.txt"));
        string server = states[states.IndexOf("# ss -tanoi on server", StringComparison.Ordinal)..];
        string connection = server[server.IndexOf("ESTAB", StringComparison.Ordinal)..];
        Assert.Contains($" {expected} ", connection.Split('\n')[1] + " ");
    }

    [KernelRunFact]
    public void With_Linux_on_both_ends_a_kernel_client_sends_its_request_in_the_SYN_with_MSG_FASTOPEN()
    {
        ScenarioResult result = Run("fast-open", PeerMode.BothLinux);

        AssertPassed(result);
        // The kernel's own SYNs: a cookie request first, then the cookie with the 5 bytes.
        string[] syns = File.ReadAllLines(Path.Combine(result.ArtifactDirectory, "trace.txt"))
            .Where(l => l.Contains("10.0.0.1.") && l.Contains("Flags [S],")).ToArray();
        Assert.Equal(2, syns.Length);
        Assert.Contains("tfo  cookiereq", syns[0]);
        Assert.EndsWith("length 0", syns[0]);
        Assert.Contains("tfo  cookie ", syns[1]);
        Assert.EndsWith("length 5", syns[1]);
    }

    private ScenarioResult Run(string name, PeerMode mode, string variant = "document")
    {
        Scenario scenario = Catalogue.Find(name);
        return KernelRun.Run(scenario, variant == "document" ? scenario.Document : scenario.CurrentKernel!, Options(), mode);
    }

    private RunOptions Options() => new(1, _out.FullName, new SysctlOverrides());

    private static void AssertPassed(ScenarioResult result) =>
        Assert.True(result.Passed, $"{result.Scenario} ({result.Mode}): {result.Failure} "
            + string.Join("; ", result.Expectations.Where(e => !e.Passed).Select(e => $"line {e.Line} {e.Description}: expected {e.Expected}, measured {e.Measured}")));

    private static IEnumerable<string> NetworkNamespaces() =>
        Directory.Exists("/run/netns") ? Directory.EnumerateFiles("/run/netns").Select(f => Path.GetFileName(f)) : [];
}

/// <summary>
/// Kernel runs go alone: they check that no namespace of this process outlives them, which
/// the namespaces of tests running beside them would break.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelRunCollection
{
    public const string Name = "kernel runs";
}

/// <summary>A fact that runs a scenario against the kernel: namespaces, TAP devices and the state tracepoint.</summary>
public sealed class KernelRunFactAttribute : FactAttribute
{
    public KernelRunFactAttribute()
    {
        if ((NetAdminEnvironment.Missing([]) ?? KernelRun.Unavailable()) is { } reason) Skip = reason;
    }
}

/// <inheritdoc cref="KernelRunFactAttribute"/>
public sealed class KernelRunTheoryAttribute : TheoryAttribute
{
    public KernelRunTheoryAttribute()
    {
        if ((NetAdminEnvironment.Missing([]) ?? KernelRun.Unavailable()) is { } reason) Skip = reason;
    }
}
