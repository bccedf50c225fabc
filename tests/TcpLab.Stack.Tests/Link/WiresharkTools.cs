using System.Diagnostics;
using System.Globalization;

namespace TcpLab.Stack.Tests.Link;

/// <summary>
/// A fact that needs the Wireshark command-line tools (tshark, editcap, text2pcap); it skips,
/// saying so, on a machine without them.
/// </summary>
public sealed class WiresharkFactAttribute : FactAttribute
{
    public WiresharkFactAttribute()
    {
        if (WiresharkTools.Missing is { } missing)
            Skip = $"{missing} not found on PATH: install it with `apt-get install tshark` (or `make deps`)";
    }
}

/// <summary>Runs tshark and friends, with the environment pinned so their output is the same everywhere.</summary>
internal static class WiresharkTools
{
    private static readonly string[] Required = ["tshark", "editcap", "text2pcap"];

    /// <summary>The first required tool that is not installed, or null.</summary>
    public static string? Missing { get; } = Required.FirstOrDefault(tool => FindOnPath(tool) is null);

    /// <summary>
    /// Runs <paramref name="tool"/> and returns its output. Fails the test on a non-zero exit.
    /// tshark warns on stderr whenever it runs as root, whatever the file; that line says
    /// nothing about the file, so it is removed here and stderr otherwise left as printed.
    /// </summary>
    public static (string Stdout, string Stderr) Run(string tool, params string[] arguments)
    {
        var start = new ProcessStartInfo(FindOnPath(tool) ?? tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        // text2pcap reads dates in local time; tshark prints in UTC only if asked, so pin both.
        start.Environment["TZ"] = "UTC";
        start.Environment["LC_ALL"] = "C";

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', arguments)} did not finish in 60 s");
        }
        string error = string.Join('\n', stderr.Result.Split('\n')
            .Where(line => !line.StartsWith("Running as user \"root\"", StringComparison.Ordinal))).Trim();
        Assert.True(process.ExitCode == 0, $"{tool} {string.Join(' ', arguments)} exited {process.ExitCode}: {error}");
        return (stdout.Result, error);
    }

    /// <summary>
    /// The display-filter field of a packet comment: "frame.comment" since Wireshark 3.6,
    /// "pkt_comment" before.
    /// </summary>
    public static string CommentField { get; } = DetectCommentField();

    private static string DetectCommentField()
    {
        if (Missing is not null) return "frame.comment";
        string fields = Run("tshark", "-G", "fields").Stdout;
        return fields.Contains("\tframe.comment\t", StringComparison.Ordinal) ? "frame.comment" : "pkt_comment";
    }

    /// <summary>"1767225601.000000123": frame.time_epoch as tshark prints it, every nanosecond digit kept.</summary>
    public static string EpochSeconds(long nanoseconds) =>
        string.Create(CultureInfo.InvariantCulture, $"{nanoseconds / 1_000_000_000}.{nanoseconds % 1_000_000_000:D9}");

    private static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, tool))
            .FirstOrDefault(File.Exists);
}

/// <summary>A directory for one test's files, removed afterwards.</summary>
internal sealed class ScratchDirectory : IDisposable
{
    public ScratchDirectory() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tcplab-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
