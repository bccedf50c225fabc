using System.Globalization;
using System.Text;
using TcpLab.Lab.Tests.Support;
using TcpLab.Lab.Trace;
using TcpLab.Stack.Link.Capture;

namespace TcpLab.Lab.Tests.Trace;

/// <summary>
/// The analysis of a capture, frame by frame, from <see cref="TcpAnalyzer"/> and from tshark, in
/// one text form ("frame 12: [TCP Dup ACK 9#1]", frames without labels left out) so that a test
/// failure shows the frames where they differ.
/// </summary>
internal static class AnalysisComparison
{
    /// <summary>The tcp.analysis fields that are flags, with the flag each stands for (tshark -G fields).</summary>
    private static readonly (string Field, TcpAnalysisFlags Flag)[] FlagFields =
    [
        ("tcp.analysis.retransmission", TcpAnalysisFlags.Retransmission),
        ("tcp.analysis.fast_retransmission", TcpAnalysisFlags.FastRetransmission),
        ("tcp.analysis.spurious_retransmission", TcpAnalysisFlags.SpuriousRetransmission),
        ("tcp.analysis.out_of_order", TcpAnalysisFlags.OutOfOrder),
        ("tcp.analysis.lost_segment", TcpAnalysisFlags.LostSegment),
        ("tcp.analysis.ack_lost_segment", TcpAnalysisFlags.AckedUnseenSegment),
        ("tcp.analysis.zero_window", TcpAnalysisFlags.ZeroWindow),
        ("tcp.analysis.zero_window_probe", TcpAnalysisFlags.ZeroWindowProbe),
        ("tcp.analysis.zero_window_probe_ack", TcpAnalysisFlags.ZeroWindowProbeAck),
        ("tcp.analysis.window_full", TcpAnalysisFlags.WindowFull),
        ("tcp.analysis.window_update", TcpAnalysisFlags.WindowUpdate),
        ("tcp.analysis.keep_alive", TcpAnalysisFlags.KeepAlive),
        ("tcp.analysis.keep_alive_ack", TcpAnalysisFlags.KeepAliveAck),
        ("tcp.analysis.reused_ports", TcpAnalysisFlags.ReusedPorts),
    ];

    /// <summary>Our analysis of every frame, numbered from 1 as Wireshark numbers them.</summary>
    public static SortedDictionary<long, TcpFrameAnalysis> Ours(string path)
    {
        var analyzer = new TcpAnalyzer();
        var frames = new SortedDictionary<long, TcpFrameAnalysis>();
        long number = 0;
        foreach (CaptureRecord record in CaptureFileReader.ReadFile(path))
        {
            number++;
            if (!LinkLayer.TryGetIpv4(record.LinkType, record.Data, out ReadOnlySpan<byte> datagram)) continue;
            TcpFrameAnalysis analysis = analyzer.Analyze(number, record.Timestamp, datagram);
            if (analysis.Flags != TcpAnalysisFlags.None) frames[number] = analysis;
        }
        return frames;
    }

    /// <summary>tshark's analysis of every frame, read from -T fields (a flag field is non-empty when set).</summary>
    public static SortedDictionary<long, TcpFrameAnalysis> Tshark(string path)
    {
        string[] fields = ["frame.number", .. FlagFields.Select(f => f.Field), "tcp.analysis.duplicate_ack_num", "tcp.analysis.duplicate_ack_frame"];
        var (exit, output, error) = ExternalTools.Run("tshark", ["-n", "-r", path, "-T", "fields", .. fields.SelectMany(f => new[] { "-e", f })]);
        Assert.True(exit == 0, $"tshark failed on {path}: {error}");
        var frames = new SortedDictionary<long, TcpFrameAnalysis>();
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] values = line.Split('\t');
            var flags = TcpAnalysisFlags.None;
            for (int i = 0; i < FlagFields.Length; i++)
            {
                if (values[i + 1].Length > 0) flags |= FlagFields[i].Flag;
            }
            // tcp_sequence_number_analysis_print_retransmission adds the retransmission expert item
            // to fast and spurious retransmissions too: alone, it is a plain one.
            if ((flags & (TcpAnalysisFlags.FastRetransmission | TcpAnalysisFlags.SpuriousRetransmission)) != 0)
                flags &= ~TcpAnalysisFlags.Retransmission;
            string duplicateNumber = values[FlagFields.Length + 1], duplicateFrame = values[FlagFields.Length + 2];
            if (duplicateNumber.Length > 0) flags |= TcpAnalysisFlags.DuplicateAck;
            if (flags == TcpAnalysisFlags.None) continue;
            frames[long.Parse(values[0], CultureInfo.InvariantCulture)] = new TcpFrameAnalysis(flags,
                duplicateNumber.Length > 0 ? int.Parse(duplicateNumber, CultureInfo.InvariantCulture) : 0,
                duplicateFrame.Length > 0 ? long.Parse(duplicateFrame, CultureInfo.InvariantCulture) : 0);
        }
        return frames;
    }

    /// <summary>"frame N: labels" per labelled frame, one a line.</summary>
    public static string Describe(SortedDictionary<long, TcpFrameAnalysis> frames)
    {
        var text = new StringBuilder();
        foreach ((long number, TcpFrameAnalysis analysis) in frames)
            text.Append(CultureInfo.InvariantCulture, $"frame {number}: {string.Join(' ', analysis.Labels())}\n");
        return text.ToString();
    }

    /// <summary>Every flag some frame carries.</summary>
    public static TcpAnalysisFlags Union(SortedDictionary<long, TcpFrameAnalysis> frames) =>
        frames.Values.Aggregate(TcpAnalysisFlags.None, (all, frame) => all | frame.Flags);
}
