using System.Buffers.Binary;
using System.CommandLine;
using System.Text.RegularExpressions;
using TcpLab.Lab.Cli;
using TcpLab.Lab.Tests.Support;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Tests.Trace;

/// <summary>`tcplab dump` through the command line: tcpdump's lines, Wireshark's labels, clear errors.</summary>
public sealed partial class DumpCommandTests
{
    private static (int ExitCode, string Output, string Error) Dump(params string[] arguments)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = LabCommandLine.Build().Parse(["dump", .. arguments]).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Wireshark's labels as dump appends them: " [TCP ...]" any number of times, then the end of the line.</summary>
    [GeneratedRegex(@"^( \[TCP [^\]]+\])*$")]
    private static partial Regex LabelsOnly();

    [RequiresToolFact("tcpdump")]
    public void Prints_a_tcpdump_written_pcap_line_for_line_as_tcpdump_does_then_the_labels()
    {
        foreach (string capture in TcpAnalyzerTests.LinuxCaptures)
        {
            var (tcpdumpExit, tcpdumpOutput, _) = ExternalTools.Run("tcpdump", "-nn", "-r", capture);
            Assert.Equal(0, tcpdumpExit);
            string[] expected = Lines(tcpdumpOutput);

            var (plainExit, plain, _) = Dump(capture, "--no-analysis");
            Assert.Equal(0, plainExit);
            Assert.Equal(expected, Lines(plain));

            var (exit, analyzed, _) = Dump(capture);
            Assert.Equal(0, exit);
            string[] lines = Lines(analyzed);
            Assert.Equal(expected.Length, lines.Length);
            for (int i = 0; i < lines.Length; i++)
            {
                Assert.StartsWith(expected[i], lines[i]);
                Assert.Matches(LabelsOnly(), lines[i][expected[i].Length..]);
            }
            Assert.Contains(lines, line => line.Contains("[TCP ", StringComparison.Ordinal));
        }
    }

    [RequiresToolTheory("tcpdump")]
    [InlineData(LinkType.Raw)]
    [InlineData(LinkType.LinuxCooked)]
    [InlineData(LinkType.Null)]
    public void Prints_other_link_layers_as_tcpdump_does_with_the_same_labels(LinkType linkType)
    {
        string ethernet = TcpAnalyzerTests.LinuxCaptures.Single(c => c.EndsWith("linux-loss.pcap", StringComparison.Ordinal));
        string path = Path.GetTempFileName();
        try
        {
            WithLinkLayer(ethernet, path, linkType);
            var (tcpdumpExit, tcpdumpOutput, _) = ExternalTools.Run("tcpdump", "-nn", "-r", path);
            Assert.Equal(0, tcpdumpExit);
            Assert.Equal(Lines(tcpdumpOutput), Lines(Dump(path, "--no-analysis").Output));
            Assert.Equal(Lines(Dump(ethernet).Output), Lines(Dump(path).Output));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Rewrites an Ethernet capture as a classic pcap of <paramref name="linkType"/>, each IPv4 datagram behind that link layer's header.</summary>
    private static void WithLinkLayer(string ethernetCapture, string path, LinkType linkType)
    {
        using var file = new BinaryWriter(File.Create(path));
        file.Write(0xA1B2C3D4u);    // microseconds, little-endian
        file.Write((ushort)2);
        file.Write((ushort)4);
        file.Write(0L);             // reserved
        file.Write(262144u);
        file.Write((uint)linkType);
        foreach (CaptureRecord record in CaptureFileReader.ReadFile(ethernetCapture))
        {
            byte[] header = linkType switch
            {
                LinkType.Raw => [],
                LinkType.Null => [2, 0, 0, 0],   // AF_INET in the little-endian writer's order
                // Linux cooked v1: sent by us (4), ARPHRD_ETHER, a 6-byte address padded to 8, then the EtherType.
                LinkType.LinuxCooked => [0, 4, 0, 1, 0, 6, .. record.Data.AsSpan(6, 6), 0, 0, 0x08, 0x00],
                _ => throw new ArgumentOutOfRangeException(nameof(linkType)),
            };
            byte[] datagram = record.Data[EthernetFrame.HeaderLength..];
            file.Write((uint)(record.Timestamp / 1_000_000_000));
            file.Write((uint)(record.Timestamp / 1000 % 1_000_000));
            file.Write((uint)(header.Length + datagram.Length));
            file.Write((uint)(header.Length + datagram.Length));
            file.Write(header);
            file.Write(datagram);
        }
    }

    [Fact]
    public void Labels_follow_the_line_as_in_Wiresharks_Info_column()
    {
        string capture = TcpAnalyzerTests.LinuxCaptures.Single(c => c.EndsWith("linux-loss.pcap", StringComparison.Ordinal));
        string[] lines = Lines(Dump(capture, "--relative-time").Output);
        Assert.Contains(lines, line => line.EndsWith(", length 0 [TCP Dup ACK 22#1]", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.EndsWith(", length 1448 [TCP Fast Retransmission]", StringComparison.Ordinal));
        Assert.StartsWith(" 00:00:00.000000 IP 10.77.240.1.", lines[0]);
    }

    [Fact]
    public void A_file_that_is_not_a_capture_fails_with_a_message_and_no_stack_trace()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "this is not a capture file\n");
            var (exit, output, error) = Dump(path);
            Assert.Equal(1, exit);
            Assert.Equal("", output);
            Assert.Equal($"tcplab dump: {path}: not a readable pcap or pcapng file: file header at offset 0: magic 0x73696874 is neither pcap nor pcapng\n", error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_capture_cut_short_prints_the_whole_frames_then_fails()
    {
        string capture = TcpAnalyzerTests.LinuxCaptures[0];
        string path = Path.GetTempFileName();
        try
        {
            byte[] bytes = File.ReadAllBytes(capture);
            File.WriteAllBytes(path, bytes[..(bytes.Length - 10)]);
            var (exit, output, error) = Dump(path);
            Assert.Equal(1, exit);
            Assert.Equal(Lines(Dump(capture).Output)[..^1], Lines(output));
            Assert.StartsWith($"tcplab dump: {path}: not a readable pcap or pcapng file: record at offset ", error);
            Assert.DoesNotContain("   at ", error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_missing_file_fails_with_a_message()
    {
        var (exit, _, error) = Dump("/nonexistent/capture.pcap");
        Assert.Equal(1, exit);
        Assert.Equal("tcplab dump: /nonexistent/capture.pcap: no such file\n", error);
    }
}
