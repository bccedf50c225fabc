namespace TcpLab.Stack.Time;

/// <summary>
/// A point on an event loop's monotonic clock, in nanoseconds since the loop's epoch.
/// In simulation this is virtual time; on a TAP device it follows CLOCK_MONOTONIC.
/// The stack never reads the wall clock: every timestamp it uses is an <see cref="Instant"/>
/// handed to it by its loop.
/// </summary>
public readonly record struct Instant(long Nanoseconds) : IComparable<Instant>
{
    public static readonly Instant Zero = new(0);
    public static readonly Instant MaxValue = new(long.MaxValue);

    public long Microseconds => Nanoseconds / 1_000;
    public long Milliseconds => Nanoseconds / 1_000_000;
    public double TotalSeconds => Nanoseconds / 1e9;

    public static Instant FromMicroseconds(long us) => new(us * 1_000);
    public static Instant FromMilliseconds(long ms) => new(ms * 1_000_000);
    public static Instant FromSeconds(double s) => new((long)Math.Round(s * 1e9));

    /// <summary>TimeSpan ticks are 100 ns; durations in the stack are TimeSpans.</summary>
    public static Instant operator +(Instant t, TimeSpan d) => new(SaturatingAdd(t.Nanoseconds, d.Ticks * 100));
    public static Instant operator -(Instant t, TimeSpan d) => new(t.Nanoseconds - d.Ticks * 100);
    public static TimeSpan operator -(Instant a, Instant b) => TimeSpan.FromTicks((a.Nanoseconds - b.Nanoseconds) / 100);

    public static bool operator <(Instant a, Instant b) => a.Nanoseconds < b.Nanoseconds;
    public static bool operator >(Instant a, Instant b) => a.Nanoseconds > b.Nanoseconds;
    public static bool operator <=(Instant a, Instant b) => a.Nanoseconds <= b.Nanoseconds;
    public static bool operator >=(Instant a, Instant b) => a.Nanoseconds >= b.Nanoseconds;

    public static Instant Min(Instant a, Instant b) => a <= b ? a : b;
    public static Instant Max(Instant a, Instant b) => a >= b ? a : b;

    public int CompareTo(Instant other) => Nanoseconds.CompareTo(other.Nanoseconds);

    /// <summary>Seconds with microsecond precision, e.g. "3.000123s": how the lab prints times.</summary>
    public override string ToString() => $"{Nanoseconds / 1_000_000_000}.{Nanoseconds / 1_000 % 1_000_000:D6}s";

    private static long SaturatingAdd(long a, long b)
    {
        long r = a + b;
        // Overflow only if both operands have the same sign and the result's sign differs.
        return ((a ^ r) & (b ^ r)) < 0 ? (b > 0 ? long.MaxValue : long.MinValue) : r;
    }
}
