using TcpLab.Lab.Demo;
using TcpLab.Lab.Hosting;
using TcpLab.Lab.Tests.Support;
using TcpLab.Lab.Trace;
using TcpLab.Stack.Link.Capture;

namespace TcpLab.Lab.Tests.Trace;

/// <summary>Our tcpdump-format lines against tcpdump itself, on the same capture.</summary>
public class TcpdumpFormatterTests
{
    private static string DemoCapture()
    {
        string dir = Path.Combine(Path.GetTempPath(), "tcplab-test-" + Guid.NewGuid().ToString("N"));
        SimulatedDemo.RunAsync(new SysctlOverrides(), dir, TextWriter.Null).GetAwaiter().GetResult();
        return Path.Combine(dir, "capture.pcapng");
    }

    [RequiresToolFact("tcpdump")]
    public void Lines_match_tcpdump_in_absolute_and_relative_time_and_sequence_modes()
    {
        string capture = DemoCapture();
        try
        {
            foreach (var (time, absolute, flags) in new[]
                     {
                         (TraceTime.Absolute, false, new[] { "-nn" }),
                         (TraceTime.SinceFirst, false, new[] { "-nn", "-ttttt" }),
                         (TraceTime.Absolute, true, new[] { "-nn", "-S" }),
                     })
            {
                var (exit, expected, _) = ExternalTools.Run("tcpdump", [.. flags, "-r", capture]);
                Assert.Equal(0, exit);
                var formatter = new TcpdumpFormatter(time, absolute);
                string ours = string.Concat(CaptureFileReader.ReadFile(capture).Select(r => formatter.Format(r.Timestamp, r.Data) + "\n"));
                Assert.Equal(expected, ours);
            }
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(capture)!, recursive: true);
        }
    }
}
