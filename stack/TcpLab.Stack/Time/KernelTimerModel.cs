namespace TcpLab.Stack.Time;

/// <summary>
/// When a Linux timer armed for <c>jiffies + delay</c> actually fires. The kernel counts TCP
/// timeouts in jiffies (1/HZ s): a delay is rounded up to whole ticks (usecs_to_jiffies) and the
/// timer fires on a tick boundary. Optionally the timer wheel's level granularity is added too
/// (kernel/time/timer.c calc_index: beyond 63 ticks expiry is rounded up to 8, 64, 512 ... ticks),
/// which is how a real kernel's timers come to fire late by up to 4 ms, 32 ms, 256 ms, 2 s.
/// <para>Hz = 0 turns the model off: timers fire at exactly now + delay.</para>
/// </summary>
public sealed class KernelTimerModel
{
    private const int LevelClockShift = 3;  // LVL_CLK_SHIFT: each level is 8× coarser

    public KernelTimerModel(int hz, bool wheelSlack)
    {
        if (hz is < 0 or > 10_000) throw new ArgumentOutOfRangeException(nameof(hz));
        Hz = hz;
        WheelSlack = wheelSlack && hz > 0;
    }

    public int Hz { get; }
    public bool WheelSlack { get; }

    private long TickNs => 1_000_000_000L / Hz;

    /// <summary>
    /// The instant a timer armed at <paramref name="now"/> for <paramref name="delay"/> fires.
    /// Never before now + delay, and never in the tick it was armed in: the timer softirq runs
    /// on ticks, after whatever the current segment woke up (so a delayed ACK with ato 0 lets
    /// the application answer first). With the wheel's slack, exactly as Linux computes it:
    /// jiffies + the delay in ticks, rounded up to the wheel level's granularity. Without it, the
    /// first tick at or after now + delay: times stay exact where events fall on ticks.
    /// </summary>
    public Instant Deadline(Instant now, TimeSpan delay)
    {
        if (Hz == 0) return now + delay;
        long tick = TickNs;
        long nowTicks = now.Nanoseconds / tick;               // jiffies
        long delayNs = Math.Max(0, delay.Ticks * 100);
        long expires;
        if (WheelSlack)
        {
            long delayTicks = (delayNs + tick - 1) / tick;    // usecs_to_jiffies rounds up
            expires = WheelExpiry(nowTicks, nowTicks + delayTicks);
        }
        else
        {
            expires = Math.Max((now.Nanoseconds + delayNs + tick - 1) / tick, nowTicks + 1);
        }
        return new Instant(expires * tick);
    }

    /// <summary>
    /// calc_wheel_index/calc_index: the level is chosen by the distance (LVL_START(n) = 63 &lt;&lt; 3(n-1)
    /// ticks) and the expiry rounded strictly up to that level's granularity, so even a level-0
    /// timer fires one tick after its nominal expiry ("a timer must not fire early").
    /// </summary>
    private static long WheelExpiry(long nowTicks, long expires)
    {
        int shift = Level(expires - nowTicks) * LevelClockShift;
        return ((expires >> shift) + 1) << shift;
    }

    /// <summary>The wheel level of a timer <paramref name="deltaTicks"/> ahead (LVL_DEPTH 9 at HZ &gt; 100).</summary>
    private static int Level(long deltaTicks)
    {
        int level = 0;
        while (level < 8 && deltaTicks >= 63L << (LevelClockShift * level)) level++;
        return level;
    }

    /// <summary>
    /// The most a Linux timer armed for <paramref name="delay"/> can fire after now + delay: its
    /// wheel level's granularity plus the part of a tick lost when the delay and the arming moment
    /// are rounded to ticks. 8 ms below 252 ms at HZ=250, 36 ms up to 2 s, 260 ms up to 16 s,
    /// 2.05 s up to 129 s, 16.4 s up to 17 min, 131 s up to 2.3 h: a keepalive timer of
    /// tcp_keepalive_time (2 h) is one of the last. Needs Hz &gt; 0.
    /// </summary>
    public TimeSpan MaxLateness(TimeSpan delay)
    {
        if (Hz == 0) throw new InvalidOperationException("the model is off (Hz = 0): timers are exact");
        long tick = TickNs;
        long delayTicks = (Math.Max(0, delay.Ticks * 100) + tick - 1) / tick;
        long granularity = 1L << (Level(delayTicks) * LevelClockShift);
        return TimeSpan.FromTicks((granularity + 1) * tick / 100);
    }

    /// <summary>A duration as the kernel holds it: rounded up to whole ticks (identity when Hz = 0).</summary>
    public TimeSpan Round(TimeSpan delay)
    {
        if (Hz == 0) return delay;
        long tick = TickNs;
        long ticks = (delay.Ticks * 100 + tick - 1) / tick;
        return TimeSpan.FromTicks(ticks * tick / 100);
    }
}
