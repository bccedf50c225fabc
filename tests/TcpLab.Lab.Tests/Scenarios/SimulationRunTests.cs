using System.Diagnostics;
using TcpLab.Lab.Hosting;
using TcpLab.Lab.Scenarios;

namespace TcpLab.Lab.Tests.Scenarios;

/// <summary>The catalogue in simulation, as `make run` runs it, and what a run promises: determinism, artifacts, verdicts.</summary>
public sealed class SimulationRunTests : IDisposable
{
    private readonly DirectoryInfo _out = Directory.CreateTempSubdirectory("tcplab-runs-");

    public void Dispose() => _out.Delete(recursive: true);

    private RunOptions Options(ulong seed = 1) => new(seed, _out.FullName, new SysctlOverrides());

    public static TheoryData<string> CatalogueNames() => new(Catalogue.All().Select(s => s.Name));

    [Theory]
    [MemberData(nameof(CatalogueNames))]
    public void Every_catalogue_experiment_meets_its_expectations_in_simulation(string name)
    {
        Scenario scenario = Catalogue.Find(name);
        foreach (Variant variant in new[] { scenario.Document, scenario.CurrentKernel }.OfType<Variant>())
        {
            ScenarioResult result = SimulationRun.Run(scenario, variant, Options());

            Assert.True(result.Passed, $"{name} ({variant.Name}): {result.Failure} "
                + string.Join("; ", result.Expectations.Where(e => !e.Passed).Select(e => $"line {e.Line} {e.Description}: expected {e.Expected}, measured {e.Measured}")));
        }
    }

    [Fact]
    public void The_same_seed_gives_a_byte_identical_capture_and_another_seed_does_not()
    {
        Scenario scenario = Catalogue.Find("close-4way");
        byte[] Capture(ulong seed, string dir)
        {
            ScenarioResult result = SimulationRun.Run(scenario, scenario.Document, Options(seed) with { OutputDirectory = Path.Combine(_out.FullName, dir) });
            return File.ReadAllBytes(Path.Combine(result.ArtifactDirectory, "capture.pcapng"));
        }

        byte[] first = Capture(7, "a"), second = Capture(7, "b"), other = Capture(8, "c");

        Assert.Equal(first, second);
        Assert.NotEqual(first, other);   // ISNs, timestamps and ports come from the seed
    }

    [Fact]
    public void A_run_leaves_its_artifacts_and_the_trace_gives_each_packet_its_cause()
    {
        Scenario scenario = Catalogue.Find("syn-loss");
        ScenarioResult result = SimulationRun.Run(scenario, scenario.Document, Options());

        Assert.Equal(Path.Combine(_out.FullName, "syn-loss"), result.ArtifactDirectory.TrimEnd('/'));
        Assert.Equal(Path.Combine(_out.FullName, "syn-loss", "current-kernel"),
                     SimulationRun.Run(scenario, scenario.CurrentKernel!, Options()).ArtifactDirectory);
        foreach (string file in new[] { "capture.pcapng", "trace.txt", "trace-relative.txt", "states.txt", "result.json" })
            Assert.True(File.Exists(Path.Combine(result.ArtifactDirectory, file)), file);
        string[] syns = File.ReadAllLines(Path.Combine(result.ArtifactDirectory, "trace.txt")).Where(l => l.Contains("Flags [S]")).ToArray();
        Assert.Equal(6, syns.Length);
        Assert.EndsWith("# connect(): SYN | dropped by rule 1 'server unplugged' (match 1)", syns[0]);
        Assert.Contains("# RTO: SYN retransmit 2/5, rto 2 s", syns[2]);
    }

    [Fact]
    public void In_simulation_CUBIC_leaves_slow_start_by_HyStarts_ACK_train_exactly_once()
    {
        // The catalogue lets a kernel sender miss the train (at-most: 1); the lab's own CUBIC may not.
        const string Lenient = "name: TcpExtTCPHystartTrainDetect, at-most: 1";
        string yaml = File.ReadAllText(Catalogue.Find("slow-start").FilePath);
        Assert.Contains(Lenient, yaml);
        Scenario scenario = ScenarioReader.Read(yaml.Replace(Lenient, "name: TcpExtTCPHystartTrainDetect, equals: 1"), "slow-start.yaml");

        ScenarioResult result = SimulationRun.Run(scenario, scenario.CurrentKernel!, Options());

        ExpectationResult train = Assert.Single(result.Expectations, e => e.Description.Contains("TcpExtTCPHystartTrainDetect"));
        Assert.True(train.Passed, $"expected {train.Expected}, measured {train.Measured}");
        Assert.True(result.Passed);
    }

    [Fact]
    public void A_wrong_expectation_fails_the_run_and_says_what_was_measured()
    {
        string yaml = File.ReadAllText(Catalogue.Find("refused").FilePath).Replace("errno: ECONNREFUSED", "errno: ETIMEDOUT");
        Scenario scenario = ScenarioReader.Read(yaml, "refused-wrong.yaml");

        ScenarioResult result = SimulationRun.Run(scenario, scenario.Document, Options());

        Assert.False(result.Passed);
        ExpectationResult failed = Assert.Single(result.Expectations, e => !e.Passed);
        Assert.Equal("ETIMEDOUT at 0.004s", failed.Expected);
        Assert.Equal("ECONNREFUSED at 0.004s", failed.Measured);
    }

    [Fact]
    public void A_step_that_cannot_be_carried_out_fails_the_run_with_its_line()
    {
        Scenario scenario = ScenarioReader.Read("""
            name: early-close
            title: closes a socket before it exists
            hosts: { client: 10.0.0.1/24, server: 10.0.0.2/24 }
            steps:
              - { at: 1s, host: server, listen: 80, accept-as: s }
              - { at: 0.5s, close: s }
            duration: 2s
            """, "early-close.yaml");

        ScenarioResult result = SimulationRun.Run(scenario, scenario.Document, Options());

        Assert.False(result.Passed);
        Assert.Contains("line 6 at 0.5 s: socket 's' does not exist yet", result.Failure);
    }

    [Fact]
    public void The_command_exits_non_zero_when_an_expectation_fails()
    {
        string file = Path.Combine(_out.FullName, "refused-wrong.yaml");
        File.WriteAllText(file, File.ReadAllText(Catalogue.Find("refused").FilePath).Replace("errno: ECONNREFUSED", "errno: ETIMEDOUT"));

        (int exit, string output) = Tcplab("run", file, "--out", _out.FullName);

        Assert.Equal(1, exit);
        Assert.Contains("FAIL", output);
        Assert.Contains("expected ETIMEDOUT at 0.004s, measured ECONNREFUSED at 0.004s", output);
    }

    [Fact]
    public void The_command_names_a_bad_file_and_exits_2_without_a_stack_trace()
    {
        string file = Path.Combine(_out.FullName, "bad.yaml");
        File.WriteAllText(file, "name: bad\ntitle: bad\nhosts: { client: 10.0.0.1/24, server: 10.0.0.2/24 }\nduration: soon\n");

        (int exit, string output) = Tcplab("run", file, "--out", _out.FullName);

        Assert.Equal(2, exit);
        Assert.Equal($"tcplab: {file}:4: 'soon' is not a duration (seconds, or 200ms, 1.5s, 2m, 2h)", output.Trim());
    }

    private static (int Exit, string Output) Tcplab(params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "tcplab"), args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(), stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
