using TcpLab.Lab.Tests.Support;
using TcpLab.Lab.Trace;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Tests.Trace;

/// <summary>Our TCP analysis against tshark's, frame by frame, on captures made to show every label.</summary>
public sealed class TcpAnalyzerTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tcplab-analysis-").FullName;

    public static TheoryData<string> SimulatedScenarios => new(AnalysisScenario.All.Select(s => s.Name));

    [RequiresToolTheory("tshark")]
    [MemberData(nameof(SimulatedScenarios))]
    public void Labels_match_tshark_on_both_ends_of_a_simulated_transfer(string name)
    {
        AnalysisScenario scenario = AnalysisScenario.All.Single(s => s.Name == name);
        var (clientView, serverView) = scenario.Capture(_directory);
        var shown = TcpAnalysisFlags.None;
        foreach (string capture in new[] { clientView, serverView })
        {
            var ours = AnalysisComparison.Ours(capture);
            Assert.Equal(AnalysisComparison.Describe(AnalysisComparison.Tshark(capture)), AnalysisComparison.Describe(ours));
            shown |= AnalysisComparison.Union(ours);
        }
        Assert.Equal(scenario.Expected, shown & scenario.Expected);
    }

    /// <summary>What the kernel captures show between them (see tools/analysis-captures/capture.sh).</summary>
    private const TcpAnalysisFlags ShownByLinux = TcpAnalysisFlags.DuplicateAck | TcpAnalysisFlags.FastRetransmission
        | TcpAnalysisFlags.SpuriousRetransmission | TcpAnalysisFlags.Retransmission | TcpAnalysisFlags.WindowFull
        | TcpAnalysisFlags.ZeroWindow | TcpAnalysisFlags.WindowUpdate | TcpAnalysisFlags.KeepAlive | TcpAnalysisFlags.KeepAliveAck;

    internal static string[] LinuxCaptures =>
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Trace", "Captures"), "linux-*.pcap").Order().ToArray();

    [RequiresToolFact("tshark")]
    public void Labels_match_tshark_on_captures_of_the_Linux_kernel()
    {
        Assert.NotEmpty(LinuxCaptures);
        var shown = TcpAnalysisFlags.None;
        foreach (string capture in LinuxCaptures)
        {
            var ours = AnalysisComparison.Ours(capture);
            Assert.Equal($"{Path.GetFileName(capture)}\n{AnalysisComparison.Describe(AnalysisComparison.Tshark(capture))}",
                         $"{Path.GetFileName(capture)}\n{AnalysisComparison.Describe(ours)}");
            shown |= AnalysisComparison.Union(ours);
        }
        Assert.Equal(ShownByLinux, shown & ShownByLinux);
    }

    [RequiresToolFact("tshark")]
    public void Labels_match_tshark_on_a_crafted_capture_with_one_byte_zero_window_probes_a_missed_segment_and_reused_ports()
    {
        string capture = Path.Combine(_directory, "crafted.pcapng");
        CraftedCapture.Write(capture);
        var ours = AnalysisComparison.Ours(capture);
        Assert.Equal(AnalysisComparison.Describe(AnalysisComparison.Tshark(capture)), AnalysisComparison.Describe(ours));
        Assert.Equal(CraftedCapture.Expected, AnalysisComparison.Union(ours) & CraftedCapture.Expected);
    }

    [Fact]
    public void The_crafted_capture_reads_as_Wireshark_4_0_labels_it()
    {
        // What tshark 4.0.17 says of it (the test above), kept here for machines without tshark.
        string capture = Path.Combine(_directory, "crafted.pcapng");
        CraftedCapture.Write(capture);
        const string Expected = """
            frame 5: [TCP Window Full]
            frame 6: [TCP ZeroWindow]
            frame 7: [TCP ZeroWindowProbe]
            frame 8: [TCP ZeroWindowProbeAck] [TCP ZeroWindow]
            frame 9: [TCP ZeroWindowProbe]
            frame 10: [TCP ZeroWindowProbeAck] [TCP ZeroWindow]
            frame 11: [TCP Window Update]
            frame 14: [TCP Window Full] [TCP Previous segment not captured]
            frame 15: [TCP ACKed unseen segment]
            frame 17: [TCP Port numbers reused]
            frame 20: [TCP Port numbers reused]
            frame 22: [TCP Retransmission]
            """;
        Assert.Equal(Expected + "\n", AnalysisComparison.Describe(AnalysisComparison.Ours(capture)));
    }

    [Fact]
    public void Analyzing_a_frame_of_a_known_conversation_allocates_nothing()
    {
        string path = LinuxCaptures.Single(c => c.EndsWith("linux-loss.pcap", StringComparison.Ordinal));
        byte[][] datagrams = [.. CaptureFileReader.ReadFile(path).Select(r => r.Data[EthernetFrame.HeaderLength..])];
        var warmUp = new TcpAnalyzer();   // compiles every path first
        for (int i = 0; i < datagrams.Length; i++) warmUp.Analyze(i + 1, i, datagrams[i]);

        var analyzer = new TcpAnalyzer();
        analyzer.Analyze(1, 0, datagrams[0]);   // the conversation is made here
        long before = GC.GetAllocatedBytesForCurrentThread();
        var flags = TcpAnalysisFlags.None;
        for (int i = 1; i < datagrams.Length; i++) flags |= analyzer.Analyze(i + 1, i, datagrams[i]).Flags;
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True((flags & TcpAnalysisFlags.FastRetransmission) != 0);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
