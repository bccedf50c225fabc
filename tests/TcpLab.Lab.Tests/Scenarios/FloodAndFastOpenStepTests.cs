using TcpLab.Lab.Hosting;
using TcpLab.Lab.Scenarios;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Tests.Scenarios;

/// <summary>
/// The steps of the listener experiments: a flood of crafted segments from spoofed addresses
/// (read, checked, and sent at its rate in simulation) and connect with sendto(MSG_FASTOPEN).
/// </summary>
public sealed class FloodAndFastOpenStepTests : IDisposable
{
    private const string Flood = """
        name: flood
        title: A flood
        hosts:
          server: 10.0.0.2/24
          client: 10.0.0.1/24
          attacker: 10.0.0.66/24
        steps:
          - { at: 0s, host: server, listen: 80, backlog: 4096 }
          - { at: 1s, host: attacker, flood: "server:80", tcp: S, count: 50, rate: 100, from: 10.0.0.128/28 }
          - { at: 0s, host: client, connect: "server:80", as: c, fastopen: "GET /" }
        duration: 3s
        """;

    private readonly DirectoryInfo _out = Directory.CreateTempSubdirectory("tcplab-flood-");

    public void Dispose() => _out.Delete(recursive: true);

    [Fact]
    public void A_flood_step_reads_into_its_target_range_count_and_rate()
    {
        Scenario scenario = ScenarioReader.Read(Flood, "flood.yaml");

        FloodStep flood = Assert.IsType<FloodStep>(scenario.Steps[1]);
        Assert.Equal((Ipv4Address.Parse("10.0.0.2"), (ushort)80, TcpFlags.Syn), (flood.To, flood.Port, flood.Flags));
        Assert.Equal((Ipv4Cidr.Parse("10.0.0.128/28"), 50, 100.0, true), (flood.From, flood.Count, flood.Rate, flood.StandIn));
        Assert.Equal(TimeSpan.FromMilliseconds(490), flood.Offset(49));
        Assert.Equal("GET /"u8.ToArray(), Assert.IsType<ConnectStep>(scenario.Steps[2]).FastOpenData);
    }

    [Theory]
    [InlineData("flood: \"server:80\"", "flood: \"10.0.0.99:80\"", 9, "a flood goes to a host of the scenario")]
    [InlineData("from: 10.0.0.128/28", "from: 10.0.1.128/28", 9, "is not inside server's subnet 10.0.0.0/24")]
    [InlineData("from: 10.0.0.128/28", "from: 10.0.0.0/26", 9, "holds server's address 10.0.0.2")]
    [InlineData("from: 10.0.0.128/28", "from: 10.0.0.255", 9, "holds the network or broadcast address of 10.0.0.0/24")]
    [InlineData("from: 10.0.0.128/28", "from: somewhere", 9, "'somewhere' is not an address or a range")]
    [InlineData("count: 50", "count: 0", 9, "'0' is not a whole number in 1..1000000")]
    [InlineData("rate: 100", "rate: fast", 9, "'fast' is not a whole number")]
    [InlineData("tcp: S,", "tcp: +S,", 9, "give the exact flags")]
    [InlineData("from: 10.0.0.128/28 }", "from: 10.0.0.128/28, arp: maybe }", 9, "arp: 'maybe': answer")]
    [InlineData("count: 50, rate: 100, from: 10.0.0.128/28 }", "count: 50, rate: 100, arp: none }", 9, "arp: applies to spoofed addresses")]
    [InlineData("fastopen: \"GET /\"", "fastopen: \"\"", 10, "fastopen: the data to send")]
    [InlineData("fastopen: \"GET /\"", "count: 3", 10, "'count' does not apply to a connect step")]
    [InlineData("backlog: 4096 }", "backlog: 4096, fastopen: \"x\" }", 8, "'fastopen' does not apply to a listen step")]
    [InlineData("backlog: 4096 }", "backlog: 4096, options: { fastopen: -1 } }", 8, "'-1' is not a whole number")]
    public void Mistakes_in_flood_and_fastopen_steps_are_reported_with_file_line_and_reason(string replace, string with, int line, string reason)
    {
        Assert.Contains(replace, Flood);

        var error = Assert.Throws<ScenarioException>(() => ScenarioReader.Read(Flood.Replace(replace, with), "flood.yaml"));

        Assert.StartsWith($"flood.yaml:{line}: ", error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void A_flood_sends_its_count_at_its_rate_from_random_addresses_of_its_range_the_same_for_a_seed()
    {
        List<RecordedFrame> first = Syns(Run(Flood, seed: 1)), again = Syns(Run(Flood, seed: 1, "again")), other = Syns(Run(Flood, seed: 2, "other"));

        Assert.Equal(50, first.Count);
        // 10 ms apart from 1 s (the wire has no delay).
        Assert.Equal(Enumerable.Range(0, 50).Select(i => Math.Round(1 + i * 0.010, 6)), first.Select(f => Math.Round(f.At.TotalSeconds, 6)));
        var range = Ipv4Cidr.Parse("10.0.0.128/28");
        Assert.All(first, f => Assert.True(range.Contains(f.Source!.Value) && f.Source != range.Network && f.Source != range.DirectedBroadcast
                                           && f.SourcePort >= 1024, $"{f.Source}:{f.SourcePort}"));
        Assert.True(first.Select(f => f.Source).Distinct().Count() > 5);
        Assert.Equal(first.Select(f => (f.Source, f.SourcePort, f.Seq)), again.Select(f => (f.Source, f.SourcePort, f.Seq)));
        Assert.NotEqual(first.Select(f => (f.Source, f.SourcePort, f.Seq)), other.Select(f => (f.Source, f.SourcePort, f.Seq)));
    }

    [Fact]
    public void The_lab_answers_ARP_for_the_spoofed_range_so_the_answers_go_out_unless_told_arp_none()
    {
        List<RecordedFrame> answered = Run(Flood, seed: 1);
        List<RecordedFrame> unanswered = Run(Flood.Replace("from: 10.0.0.128/28 }", "from: 10.0.0.128/28, arp: none }"), seed: 1, "arp-none");

        static int SynAcksToTheRange(List<RecordedFrame> frames) =>
            frames.Count(f => f.Flags == (TcpFlags.Syn | TcpFlags.Ack) && Ipv4Cidr.Parse("10.0.0.128/28").Contains(f.Destination!.Value));
        Assert.Equal(50, SynAcksToTheRange(answered.Where(f => f.At < TimeSpan.FromSeconds(1.6)).ToList()));
        Assert.Equal(0, SynAcksToTheRange(unanswered));
        Assert.Contains(unanswered, f => !f.IsTcp && f.At > TimeSpan.FromSeconds(1));   // the server's ARP requests
    }

    [Fact]
    public void A_fastopen_connect_to_a_closed_port_fails_like_connect()
    {
        string yaml = Flood.Replace("connect: \"server:80\"", "connect: \"server:81\"") + """

            expect:
              - error: { socket: c, errno: ECONNREFUSED, at: 0s }
              - packets: { from: client, tcp: S, len: 0, cause: "requesting a Fast Open cookie" }
                at: [0]
            """;
        Scenario scenario = ScenarioReader.Read(yaml, "refused-fastopen.yaml");

        ScenarioResult result = SimulationRun.Run(scenario, scenario.Document, new RunOptions(1, _out.FullName, new SysctlOverrides()));

        Assert.True(result.Passed, string.Join("; ", result.Expectations.Select(e => $"{e.Description}: {e.Measured}")) + result.Failure);
    }

    private List<RecordedFrame> Run(string yaml, ulong seed, string directory = "first")
    {
        Scenario scenario = ScenarioReader.Read(yaml, "flood.yaml");
        ScenarioResult result = SimulationRun.Run(scenario, scenario.Document, new RunOptions(seed, Path.Combine(_out.FullName, directory), new SysctlOverrides()));
        return CaptureFileReader.ReadFile(Path.Combine(result.ArtifactDirectory, "capture.pcapng"))
            .Select(r => new RecordedFrame(TimeSpan.FromTicks((r.Timestamp - CaptureTime.UnixNanoseconds(Stack.Time.SimulatedEventLoop.DefaultEpoch)) / 100), r.Timestamp, r.Data, r.Comment))
            .ToList();
    }

    private static List<RecordedFrame> Syns(List<RecordedFrame> frames) =>
        frames.Where(f => f.Flags == TcpFlags.Syn && f.Source != Ipv4Address.Parse("10.0.0.1")).ToList();
}
