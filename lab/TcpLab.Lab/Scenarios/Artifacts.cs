using System.Globalization;
using System.Text;
using System.Text.Json;
using TcpLab.Lab.Trace;
using TcpLab.Stack.Tcp;

namespace TcpLab.Lab.Scenarios;

/// <summary>
/// The files a run leaves in its directory besides capture.pcapng: trace.txt (tcpdump's format,
/// wall-clock times, with each packet's cause as a trailing comment), trace-relative.txt (time
/// since the start), states.txt (every state change and the `ss` snapshots) and result.json
/// (every expectation: expected, measured, pass or fail).
/// </summary>
public static class Artifacts
{
    public static void Write(Scenario scenario, Variant variant, RunRecord record, ScenarioResult result)
    {
        string dir = result.ArtifactDirectory;
        WriteTrace(Path.Combine(dir, "trace.txt"), record, TraceTime.Absolute);
        WriteTrace(Path.Combine(dir, "trace-relative.txt"), record, TraceTime.SinceFirst);
        File.WriteAllText(Path.Combine(dir, "states.txt"), States(scenario, record));
        File.WriteAllText(Path.Combine(dir, "result.json"), Json(scenario, variant, result));
    }

    private static void WriteTrace(string path, RunRecord record, TraceTime time)
    {
        var formatter = new TcpdumpFormatter(time);
        using var writer = new StreamWriter(path);
        foreach (RecordedFrame frame in record.Frames)
        {
            writer.Write(formatter.Format(frame.UnixNanoseconds, frame.Data));
            writer.WriteLine(frame.Comment is null ? "" : "  # " + frame.Comment);
        }
    }

    private static string States(Scenario scenario, RunRecord record)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# {scenario.Name}: connection states over time ({string.Join(", ", scenario.Hosts.Select(h => $"{h.Name} {h.Address.Address}"))})");
        var names = new Dictionary<(string, long), string>();
        foreach (NamedSocket socket in record.Sockets.Values)
        {
            if (record.ConnectionOf(socket.Name) is { } id) names.TryAdd((socket.Host, id), socket.Name);
        }
        foreach (StateEvent e in record.States)
        {
            string name = names.TryGetValue((e.Host, e.ConnectionId), out string? n) ? $" ({n})" : "";
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{e.At.TotalSeconds,12:F6}  {e.Host,-8} {e.Tuple.LocalAddress}:{e.Tuple.LocalPort} -> {e.Tuple.RemoteAddress}:{e.Tuple.RemotePort}{name}  {e.From.ToNetstatName()} -> {e.To.ToNetstatName()}");
        }
        foreach (var (at, host, table) in record.Snapshots)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"# ss -tanoi on {host} at {at.TotalSeconds:F6} s");
            text.Append(table);
        }
        return text.ToString();
    }

    private static string Json(Scenario scenario, Variant variant, ScenarioResult result) =>
        JsonSerializer.Serialize(new
        {
            scenario = scenario.Name,
            title = scenario.Title,
            variant = variant.Name,
            mode = result.Mode,
            passed = result.Passed,
            failure = result.Failure,
            linux_notes = result.LinuxNotes,
            experiment_seconds = result.ExperimentTime.TotalSeconds,
            expectations = result.Expectations.Select(e => new
            {
                description = e.Description,
                expected = e.Expected,
                measured = e.Measured,
                passed = e.Passed,
                line = e.Line,
            }),
        }, new JsonSerializerOptions { WriteIndented = true });
}
