using TcpLab.Lab.Scenarios;
using TcpLab.Stack.Tcp;

namespace TcpLab.Lab.Tests.Scenarios;

/// <summary>A wrong scenario file is reported before anything runs, with its file, line and what is wrong.</summary>
public class ScenarioReaderTests
{
    private const string Valid = """
        name: example
        title: An example
        hosts:
          client: 10.0.0.1/24
          server: 10.0.0.2/24
        faults:
          - drop from=server tcp=S.
        sysctls:
          client:
            net.ipv4.tcp_syn_retries: 3
        steps:
          - { at: 0s, host: server, listen: 80, accept-as: s }
          - { at: 0.1s, host: client, connect: "server:80", as: c }
          - { when: "s2 is CLOSE_WAIT", close: s2 }
        duration: 10s
        expect:
          - packets: { from: client, tcp: S }
            at: [0.1, 1.1]
        """;

    [Fact]
    public void A_valid_file_reads_into_hosts_faults_steps_and_expectations()
    {
        Scenario scenario = ScenarioReader.Read(Valid, "example.yaml");

        Assert.Equal(["client", "server"], scenario.Hosts.Select(h => h.Name));
        Assert.Equal("10.0.0.2", Assert.Single(scenario.Faults).Rule.From!.Value.Address!.Value.ToString());
        Assert.Equal("3", scenario.Document.Sysctls["client"]["net.ipv4.tcp_syn_retries"]);
        Assert.Equal(TimeSpan.FromSeconds(0.1), scenario.Steps[1].At);
        Assert.Equal(new StateCondition("s2", TcpState.CloseWait), scenario.Steps[2].When);
        Assert.Equal(TimeSpan.FromSeconds(10), scenario.Duration);
        Assert.Equal("server", scenario.LinuxSide);
    }

    [Theory]
    [InlineData("  client: 10.0.0.1/24", "  client: 10.0.0.1", 4, "10.0.0.1")]
    [InlineData("  - drop from=server tcp=S.", "  - drop from=server tcp=Q", 7, "'Q' is not a tcpdump flag")]
    [InlineData("    net.ipv4.tcp_syn_retries: 3", "    net.ipv4.tcp_syn_retries: 300", 10, "net.ipv4.tcp_syn_retries")]
    [InlineData("    net.ipv4.tcp_syn_retries: 3", "    net.ipv4.tcp_syn_retrys: 3", 10, "net.ipv4.tcp_syn_retrys")]
    [InlineData("accept-as: s }", "accept-as: s, bogus: 1 }", 12, "unknown key 'bogus'")]
    [InlineData("connect: \"server:80\"", "connect: \"nobody:80\"", 13, "'nobody:80'")]
    [InlineData("{ when: \"s2 is CLOSE_WAIT\", close: s2 }", "{ when: \"s2 is CLOSE_WAIT\", close: t }", 14, "unknown socket 't'")]
    [InlineData("{ when: \"s2 is CLOSE_WAIT\", close: s2 }", "{ when: \"s2 is HALF_OPEN\", close: s2 }", 14, "HALF_OPEN")]
    [InlineData("duration: 10s", "duration: ten", 15, "'ten' is not a duration")]
    [InlineData("at: [0.1, 1.1]", "at: [0.1, soon]", 18, "'soon' is not a duration")]
    [InlineData("tcp: S }", "tcp: S, colour: red }", 17, "unknown key 'colour'")]
    [InlineData("tcp: S }", "tcp: S, label: Dupe ACK }", 17, "label 'Dupe ACK': not one of Wireshark's TCP analysis labels (")]
    [InlineData("tcp: S }", "tcp: S, after: 2s, until: 1s }", 17, "until: 1s is not after after: 2s")]
    [InlineData("tcp: S }", "tcp: S, mss: big }", 17, "mss 'big': expected N, N..M or N..")]
    [InlineData("at: [0.1, 1.1]", "count: 5..2", 18, "count '5..2': expected a number N, a range N..M or N.. (at least N)")]
    [InlineData("  server: 10.0.0.2/24", "  server: { address: 10.0.0.2/24, mtu: 70000 }", 5, "'70000' is not a whole number in 68..65535")]
    public void Mistakes_are_reported_with_file_line_and_reason(string replace, string with, int line, string reason)
    {
        Assert.Contains(replace, Valid);
        string yaml = Valid.Replace(replace, with);

        var error = Assert.Throws<ScenarioException>(() => ScenarioReader.Read(yaml, "example.yaml"));

        Assert.StartsWith($"example.yaml:{line}: ", error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void A_hosts_MTU_is_its_own_or_the_wires_and_patterns_read_labels_windows_and_ranges()
    {
        Scenario scenario = ScenarioReader.Read(Valid
            .Replace("  server: 10.0.0.2/24", "  server: { address: 10.0.0.2/24, mtu: 1500 }\nwire: { mtu: 65535 }")
            .Replace("tcp: S }\n    at: [0.1, 1.1]", "tcp: S, mss: 1460, label: dup ack, after: 1s, until: 2s }\n    count: 1..3"), "example.yaml");

        Assert.Equal([65535, 1500], scenario.Hosts.Select(scenario.MtuOf));
        var packets = Assert.IsType<PacketsExpectation>(Assert.Single(scenario.Document.Expectations));
        Assert.Equal(TcpLab.Lab.Trace.TcpAnalysisFlags.DuplicateAck, packets.Pattern.Label);
        Assert.Equal((TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)), (packets.Pattern.After!.Value, packets.Pattern.Until!.Value));
        Assert.Equal("1460", packets.Pattern.Mss.ToString());
        Assert.Equal("1..3", packets.Count.ToString());
    }

    [Fact]
    public void A_misspelt_key_gets_a_suggestion()
    {
        var error = Assert.Throws<ScenarioException>(() => ScenarioReader.Read(Valid.Replace("duration:", "durration:"), "example.yaml"));

        Assert.Contains("did you mean 'duration'?", error.Message);
    }

    [Fact]
    public void Every_catalogue_file_reads()
    {
        IReadOnlyList<Scenario> catalogue = Catalogue.All();

        Assert.True(catalogue.Count >= 27, $"{catalogue.Count} scenarios in {Catalogue.Directory}");
        Assert.All(catalogue, s => Assert.NotEmpty(s.Document.Expectations));
    }
}
