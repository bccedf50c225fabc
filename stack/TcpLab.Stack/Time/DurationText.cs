using System.Globalization;

namespace TcpLab.Stack.Time;

/// <summary>
/// Durations as the lab writes them in fault rules and scenario files: a decimal number and a
/// unit, "200ms", "1.5s", "2m", "2h".
/// </summary>
public static class DurationText
{
    private const long Minute = 60_000_000_000;

    /// <summary>Units from the largest; minutes are printed only when whole (see <see cref="Format(long)"/>).</summary>
    private static readonly (string Unit, long Nanoseconds)[] Units =
        [("h", 60 * Minute), ("m", Minute), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000), ("ns", 1)];

    public static bool TryParse(string text, out long nanoseconds)
    {
        nanoseconds = 0;
        int unitStart = text.AsSpan().IndexOfAnyInRange('a', 'z');
        if (unitStart <= 0
            || !decimal.TryParse(text.AsSpan(0, unitStart), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal number))
            return false;
        foreach ((string unit, long scale) in Units)
        {
            if (!text.AsSpan(unitStart).SequenceEqual(unit)) continue;
            decimal exact = number * scale;
            if (exact != decimal.Truncate(exact) || exact > long.MaxValue) return false;
            nanoseconds = (long)exact;
            return true;
        }
        return false;
    }

    /// <summary>
    /// Whole minutes as minutes; otherwise the largest of s, ms, us that the value reaches and
    /// states exactly with at most three decimals ("1.5s", "200ms", "1000.5ms"); else nanoseconds.
    /// </summary>
    public static string Format(long nanoseconds)
    {
        if (nanoseconds == 0) return "0s";
        if (nanoseconds < 0) return "-" + Format(-nanoseconds);
        if (nanoseconds % Minute == 0) return $"{nanoseconds / Minute}m";
        foreach ((string unit, long scale) in Units.AsSpan(2, 3))
        {
            if (nanoseconds >= scale && nanoseconds % (scale / 1000) == 0)
                return ((decimal)nanoseconds / scale).ToString("0.###", CultureInfo.InvariantCulture) + unit;
        }
        return $"{nanoseconds}ns";
    }

    public static string Format(TimeSpan duration) => Format(duration.Ticks * 100);

    public static bool TryParse(string text, out TimeSpan duration)
    {
        bool ok = TryParse(text, out long ns);
        duration = TimeSpan.FromTicks(ns / 100);
        return ok;
    }
}
