using TcpLab.Lab.Hosting;
using TcpLab.Lab.Scenarios;

namespace TcpLab.Lab.Tests.Scenarios;

/// <summary>
/// What the data-path experiments check, in simulation: Wireshark's labels of the run's own
/// capture, packets in a time window, counts as ranges, SYNs by their MSS, and link MTUs.
/// </summary>
public sealed class DataPathExpectationTests : IDisposable
{
    private readonly DirectoryInfo _out = Directory.CreateTempSubdirectory("tcplab-data-path-");

    public void Dispose() => _out.Delete(recursive: true);

    private ScenarioResult Run(string yaml)
    {
        Scenario scenario = ScenarioReader.Read(yaml, "data-path.yaml");
        return SimulationRun.Run(scenario, scenario.Document, new RunOptions(1, _out.FullName, new SysctlOverrides()));
    }

    private static string Failures(ScenarioResult result) =>
        string.Join("; ", result.Expectations.Where(e => !e.Passed).Select(e => $"{e.Description}: {e.Measured}"));

    private const string LostSegment = """
        name: lost-segment
        title: the third of ten segments lost, SACK off
        hosts: { client: 10.0.0.1/24, server: 10.0.0.2/24 }
        wire: { delay: 25ms }
        faults:
          - drop from=client len=1.. nth=3
        sysctls: { all: { net.ipv4.tcp_sack: 0 } }
        steps:
          - { at: 0s, host: server, listen: 80, accept-as: s }
          - { at: 0s, host: client, connect: "server:80", as: c }
          - { at: 1s, send-bytes: 14480, socket: c }
        duration: 2s
        expect:
          - packets: { from: server, label: "Dup ACK" }
            count: COUNT
          - packets: { from: client, label: "fast retransmission", after: 1.01s, until: 1.06s }
            at: [1.05]
          # As the display filter tcp.analysis.retransmission: fast ones are retransmissions too.
          - packets: { from: client, label: "Retransmission" }
            count: 1
          - packets: { from: client, len: 1448, until: 1.01s }
            count: 9..10
        """;

    [Fact]
    public void Labels_come_from_the_runs_capture_and_a_wrong_count_says_what_was_seen()
    {
        ScenarioResult right = Run(LostSegment.Replace("COUNT", "7"));
        ScenarioResult wrong = Run(LostSegment.Replace("COUNT", "3..6"));

        Assert.True(right.Passed, Failures(right));
        ExpectationResult failed = Assert.Single(wrong.Expectations, e => !e.Passed);
        Assert.Equal("from server label \"Dup ACK\": 3..6 packet(s)", failed.Description);
        Assert.StartsWith("7 (1.05s, ", failed.Measured);
    }

    [Fact]
    public void A_hosts_link_MTU_sets_the_MSS_its_SYN_announces_and_the_peer_never_sends_more()
    {
        ScenarioResult result = Run("""
            name: mtu
            title: a 65535-byte wire with one host on 1500
            hosts:
              client: { address: 10.0.0.1/24, mtu: 1500 }
              server: 10.0.0.2/24
            wire: { mtu: 65535 }
            steps:
              - { at: 0s, host: server, listen: 80, accept-as: s }
              - { at: 0s, host: client, connect: "server:80", as: c }
              - { at: 1s, send-bytes: 100000, socket: s }
            duration: 2s
            expect:
              - packets: { from: client, tcp: S, mss: 1460 }
                count: 1
              - packets: { from: server, tcp: S., mss: 65495 }
                count: 1
              - packets: { from: server, len: 1449.. }
                count: 0
              - received: { socket: c, equals-sent-by: s }
            """);

        Assert.True(result.Passed, Failures(result));
    }
}
