using System.Globalization;
using TcpLab.Stack;
using TcpLab.Stack.Link.Faults;
using TcpLab.Lab.Trace;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;

namespace TcpLab.Lab.Scenarios;

/// <summary>
/// The outcome of one expectation: what was wanted, what was seen. <see cref="NotApplicable"/>
/// says why an expectation could not be checked in this run (a cause or counter only the managed
/// stack has, asked of a kernel host); such a result counts as passed.
/// </summary>
public sealed record ExpectationResult(string Description, string Expected, string Measured, bool Passed, int Line, string? NotApplicable = null)
{
    public static ExpectationResult Skipped(string description, string expected, int line, string why) => new(description, expected, "n/a", true, line, why);
}

/// <summary>Something a scenario expects to see, checked against a <see cref="RunRecord"/> after the run.</summary>
public abstract record Expectation(int Line)
{
    public abstract ExpectationResult Check(RunRecord run);

    internal static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.######", CultureInfo.InvariantCulture) + "s";
}

/// <summary>
/// Which frames count: sender, receiver, TCP flags in the fault-rule syntax ("S", "S.", "+F"),
/// payload length, cause text, one of Wireshark's analysis labels ("Dup ACK"), and a time
/// window (from <see cref="After"/>, before <see cref="Until"/>).
/// </summary>
public sealed record PacketPattern(string? From, string? To, TcpFlagMatch? Flags, NumberRange? Length, string? Cause)
{
    public TcpAnalysisFlags Label { get; init; }
    /// <summary>The MSS option's value (so only segments with one, SYNs, match).</summary>
    public NumberRange? Mss { get; init; }
    public TimeSpan? After { get; init; }
    public TimeSpan? Until { get; init; }

    public override string ToString()
    {
        var parts = new List<string>();
        if (From is not null) parts.Add($"from {From}");
        if (To is not null) parts.Add($"to {To}");
        if (Flags is { } f) parts.Add($"tcp [{f}]");
        if (Length is { } l) parts.Add($"len {l}");
        if (Cause is not null) parts.Add($"cause \"{Cause}\"");
        if (Mss is { } mss) parts.Add($"mss {mss}");
        if (Label != TcpAnalysisFlags.None) parts.Add($"label \"{TcpFrameAnalysis.NameOf(Label)}\"");
        if (After is { } after) parts.Add($"after {Expectation.Seconds(after)}");
        if (Until is { } until) parts.Add($"until {Expectation.Seconds(until)}");
        return string.Join(" ", parts);
    }
}

/// <summary>
/// Frames matching a pattern: at the listed times (each within the tolerance), or a count of
/// them (a number, or a range N..M). The timeline is what the capture point saw, relative to
/// the start of the run.
/// </summary>
public sealed record PacketsExpectation(int Line, PacketPattern Pattern, IReadOnlyList<TimeSpan>? At, NumberRange? Count, Tolerance Tolerance) : Expectation(Line)
{
    public override ExpectationResult Check(RunRecord run)
    {
        if (Pattern.Cause is not null && (Pattern.From is null ? run.AgainstKernel : run.KernelHosts.Contains(Pattern.From)))
            return ExpectationResult.Skipped($"{Pattern}", At is null ? $"{Count}" : string.Join(", ", At.Select(Seconds)), Line,
                                             "the kernel does not record why it sends a packet");
        Tolerance tolerance = Tolerance.For(run);
        List<TimeSpan> seen = run.Frames.Where(f => run.Matches(f, Pattern)).Select(f => f.At).ToList();
        string measured = seen.Count == 0 ? "none" : string.Join(", ", seen.Select(Seconds));
        if (At is null)
            return new($"{Pattern}: {Count} packet(s)", Count!.Value.ToString(),
                       $"{seen.Count}" + (seen.Count > 0 ? $" ({measured})" : ""), Count.Value.Contains((uint)seen.Count), Line);
        bool passed = seen.Count == At.Count;
        TimeSpan previous = TimeSpan.Zero;
        TimeSpan allowed = TimeSpan.Zero;
        for (int i = 0; passed && i < At.Count; i++)
        {
            // Each timer may be late by its own granularity: tolerances add up along the chain.
            allowed += tolerance.For(At[i] - previous);
            previous = At[i];
            passed = (seen[i] - At[i]).Duration() <= allowed;
        }
        return new($"{Pattern} at", string.Join(", ", At.Select(Seconds)) + $" (±{tolerance})", measured, passed, Line);
    }
}

/// <summary>How far a measured time may be from the expected one.</summary>
public abstract record Tolerance
{
    public abstract TimeSpan For(TimeSpan interval);

    /// <summary>Against a real kernel, never tighter than its timer granularity.</summary>
    public Tolerance For(RunRecord run) => run.AgainstKernel && this is not Kernel ? new AtLeast(this, new Kernel()) : this;

    private sealed record AtLeast(Tolerance First, Tolerance Second) : Tolerance
    {
        public override TimeSpan For(TimeSpan interval) => TimeSpan.FromTicks(Math.Max(First.For(interval).Ticks, Second.For(interval).Ticks));
        public override string ToString() => $"{First}, or {Second}";
    }

    public sealed record Fixed(TimeSpan Value) : Tolerance
    {
        public override TimeSpan For(TimeSpan interval) => Value;
        public override string ToString() => Expectation.Seconds(Value);
    }

    /// <summary>
    /// A real kernel's timer lateness for a timer of this length at HZ=250 (kernel/time/timer.c
    /// wheel levels, <see cref="KernelTimerModel.MaxLateness"/>): 8 ms below 252 ms, 36 ms up to
    /// 2 s, 260 ms up to 16 s, about 2 s up to 129 s, 16 s up to 17 min, 131 s up to 2.3 h, plus
    /// 10 ms for scheduling and capture.
    /// </summary>
    public sealed record Kernel : Tolerance
    {
        private static readonly KernelTimerModel Wheel = new(hz: 250, wheelSlack: true);

        public override TimeSpan For(TimeSpan interval) => Wheel.MaxLateness(interval) + TimeSpan.FromMilliseconds(10);

        public override string ToString() => "kernel timer granularity";
    }
}

/// <summary>A socket is in a state at a moment.</summary>
public sealed record StateExpectation(int Line, string Socket, TcpState State, TimeSpan At) : Expectation(Line)
{
    public override ExpectationResult Check(RunRecord run)
    {
        TcpState actual = run.StateAt(Socket, At);
        return new($"{Socket} state at {Seconds(At)}", State.ToNetstatName(), actual.ToNetstatName(), actual == State, Line);
    }
}

/// <summary>The states a socket went through, in order.</summary>
public sealed record StatePathExpectation(int Line, string Socket, IReadOnlyList<TcpState> Path) : Expectation(Line)
{
    public override ExpectationResult Check(RunRecord run)
    {
        string expected = string.Join(" ", Path.Select(s => s.ToNetstatName()));
        string actual = string.Join(" ", run.StatePath(Socket).Select(s => s.ToNetstatName()));
        return new($"{Socket} states", expected, actual, expected == actual, Line);
    }
}

/// <summary>A socket failed with an errno (optionally at a time).</summary>
public sealed record ErrorExpectation(int Line, string Socket, Errno Errno, TimeSpan? At, Tolerance Tolerance) : Expectation(Line)
{
    public override ExpectationResult Check(RunRecord run)
    {
        (Errno error, TimeSpan? when) = run.ErrorOf(Socket);
        bool passed = error == Errno && (At is null || (when is { } w && (w - At.Value).Duration() <= Tolerance.For(run).For(At.Value)));
        string expected = At is null ? Errno.ToString() : $"{Errno} at {Seconds(At.Value)}";
        string measured = error == Errno.None ? "no error" : when is { } t ? $"{error} at {Seconds(t)}" : error.ToString();
        return new($"{Socket} error", expected, measured, passed, Line);
    }
}

public enum Comparison { Equals, AtLeast, AtMost }

/// <summary>An nstat-named counter of a host at the end of the run.</summary>
public sealed record CounterExpectation(int Line, string Host, string Counter, Comparison Comparison, long Value) : Expectation(Line)
{
    public override ExpectationResult Check(RunRecord run)
    {
        string op = Comparison switch { Comparison.Equals => "=", Comparison.AtLeast => ">=", _ => "<=" };
        if (run.KernelHosts.Contains(Host) && !run.Counters.GetValueOrDefault(Host, new Dictionary<string, long>()).ContainsKey(Counter))
            return ExpectationResult.Skipped($"{Host} {Counter}", $"{op} {Value}", Line, "the kernel keeps no such counter");
        long actual = run.Counter(Host, Counter);
        bool passed = Comparison switch
        {
            Comparison.Equals => actual == Value,
            Comparison.AtLeast => actual >= Value,
            _ => actual <= Value,
        };
        return new($"{Host} {Counter}", $"{op} {Value}", actual.ToString(CultureInfo.InvariantCulture), passed, Line);
    }
}

/// <summary>What one socket received equals what another sent (length and SHA-256).</summary>
public sealed record ReceivedExpectation(int Line, string Socket, string SentBy) : Expectation(Line)
{
    public override ExpectationResult Check(RunRecord run)
    {
        var (receivedBytes, receivedHash) = run.Received(Socket);
        var (sentBytes, sentHash) = run.Sent(SentBy);
        bool passed = receivedBytes == sentBytes && receivedHash == sentHash;
        return new($"{Socket} received what {SentBy} sent", $"{sentBytes} bytes, sha256 {sentHash[..12]}",
                   $"{receivedBytes} bytes, sha256 {receivedHash[..12]}", passed, Line);
    }
}
