using System.Text;
using TcpLab.Stack.Link.Capture;

namespace TcpLab.Lab.Trace;

/// <summary>How `tcplab dump` prints: tcpdump's -ttttt and -S, and whether to add Wireshark's analysis.</summary>
public sealed record DumpOptions(bool RelativeTime = false, bool AbsoluteSequence = false, bool Analysis = true);

/// <summary>
/// `tcplab dump FILE`: every frame of a pcap or pcapng file as one <see cref="TcpdumpFormatter"/>
/// line, followed by the labels Wireshark's TCP analysis gives it (<see cref="TcpAnalyzer"/>) and
/// the packet comment, e.g.
/// <c>... Flags [P.], seq 1:1449, ack 1, win 502, length 1448 [TCP Retransmission]  # RTO: ...</c>.
/// </summary>
public static class CaptureDump
{
    /// <summary>Exit status for a file that cannot be opened or does not read as a capture.</summary>
    public const int UnreadableFile = 1;

    /// <summary>Prints the capture at <paramref name="path"/>; a bad file is reported on <paramref name="error"/>, without a stack trace.</summary>
    /// <returns>0, or <see cref="UnreadableFile"/> (after the frames read before the fault, as tcpdump does).</returns>
    public static int Run(string path, DumpOptions options, TextWriter output, TextWriter error)
    {
        try
        {
            using CaptureFileReader reader = CaptureFileReader.Open(path);
            var formatter = new TcpdumpFormatter(options.RelativeTime ? TraceTime.SinceFirst : TraceTime.Absolute, options.AbsoluteSequence);
            TcpAnalyzer? analyzer = options.Analysis ? new TcpAnalyzer() : null;
            var line = new StringBuilder(256);
            long frameNumber = 0;
            while (reader.TryRead(out CaptureRecord record))
            {
                frameNumber++;
                line.Clear().Append(formatter.Format(record.Timestamp, record.LinkType, record.Data));
                if (analyzer is not null && LinkLayer.TryGetIpv4(record.LinkType, record.Data, out ReadOnlySpan<byte> datagram))
                {
                    foreach (string label in analyzer.Analyze(frameNumber, record.Timestamp, datagram).Labels())
                        line.Append(' ').Append(label);
                }
                // Several comments on one packet come joined by newlines; one frame stays one line.
                if (!string.IsNullOrEmpty(record.Comment)) line.Append("  # ").Append(record.Comment.ReplaceLineEndings(" | "));
                output.WriteLine(line);
            }
            return 0;
        }
        catch (Exception e) when (e is CaptureFormatException or IOException or UnauthorizedAccessException)
        {
            output.Flush();
            error.WriteLine($"tcplab dump: {path}: {Describe(e)}");
            return UnreadableFile;
        }
    }

    private static string Describe(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => "no such file",
        UnauthorizedAccessException => "cannot be read (a directory, or no permission)",
        CaptureFormatException format => $"not a readable pcap or pcapng file: {format.Message}",
        _ => e.Message,
    };
}
