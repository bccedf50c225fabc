using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Time;

/// <summary>When a timer armed at a moment for a delay fires, under HZ=250 with and without the timer wheel's slack.</summary>
public class KernelTimerModelTests
{
    private static Instant At(double seconds) => new((long)Math.Round(seconds * 1e9));
    private static double Fires(KernelTimerModel model, double now, double delay) =>
        model.Deadline(At(now), TimeSpan.FromSeconds(delay)).Nanoseconds / 1e9;

    [Fact]
    public void Without_a_clock_rate_a_timer_fires_exactly_when_due() =>
        Assert.Equal(1.2345, Fires(new KernelTimerModel(0, wheelSlack: false), 0.2345, 1), 9);

    [Theory]
    [InlineData(1.000, 1.0, 2.000)]     // on a tick: exact, so simulated series read 1, 3, 7 s
    [InlineData(0.501, 0.040, 0.544)]   // off a tick: the first tick after 0.541 s
    [InlineData(0.500, 0.0, 0.504)]     // due now: the next tick, after what the current event woke up
    [InlineData(0.501, 0.0, 0.504)]
    [InlineData(0.000, 0.200, 0.200)]
    public void Without_slack_a_timer_fires_on_the_first_tick_at_or_after_its_time(double now, double delay, double fires) =>
        Assert.Equal(fires, Fires(new KernelTimerModel(250, wheelSlack: false), now, delay), 9);

    [Theory]
    [InlineData(0.000, 0.040, 0.044)]   // level 0 (under 63 ticks): one tick late
    [InlineData(0.000, 0.200, 0.204)]   // the 200 ms RTO floor
    [InlineData(0.000, 1.0, 1.024)]     // level 1, 8-tick (32 ms) buckets: 250 ticks -> 256
    [InlineData(0.004, 1.0, 1.024)]     // armed a tick later, same bucket
    [InlineData(0.000, 60.0, 61.440)]   // level 3, 512-tick (2.048 s) buckets: TIME_WAIT's 15000 ticks -> 15360
    public void With_slack_a_timer_fires_where_Linuxs_timer_wheel_puts_it(double now, double delay, double fires) =>
        Assert.Equal(fires, Fires(new KernelTimerModel(250, wheelSlack: true), now, delay), 9);

    [Fact]
    public void Neither_model_ever_fires_a_timer_early()
    {
        var random = new DeterministicRandom(42);
        foreach (bool slack in new[] { false, true })
        {
            var model = new KernelTimerModel(250, slack);
            for (int i = 0; i < 10_000; i++)
            {
                var now = new Instant((long)random.NextUInt64() % 1_000_000_000_000L);
                var delay = TimeSpan.FromTicks((long)(random.NextUInt64() % (200L * TimeSpan.TicksPerSecond)));
                Instant fires = model.Deadline(now, delay);
                Assert.True(fires >= now + delay && fires > now, $"slack {slack}: armed at {now} for {delay}, fires at {fires}");
            }
        }
    }

    [Theory]
    [InlineData(0.200, 0.008)]      // level 0: a tick of bucket plus a tick of rounding
    [InlineData(1.0, 0.036)]        // level 1: 32 ms buckets
    [InlineData(60.0, 2.052)]       // level 3: TIME_WAIT
    [InlineData(7200.0, 131.076)]   // level 5: tcp_keepalive_time, 32768-tick buckets
    public void The_most_a_timer_can_be_late_is_its_levels_bucket_and_a_tick(double delay, double lateness) =>
        Assert.Equal(lateness, new KernelTimerModel(250, wheelSlack: true).MaxLateness(TimeSpan.FromSeconds(delay)).TotalSeconds, 9);

    [Fact]
    public void No_timer_fires_later_than_its_maximum_lateness()
    {
        var random = new DeterministicRandom(7);
        var model = new KernelTimerModel(250, wheelSlack: true);
        for (int i = 0; i < 10_000; i++)
        {
            var now = new Instant((long)random.NextUInt64() % 1_000_000_000_000L);
            var delay = TimeSpan.FromTicks((long)(random.NextUInt64() % (3L * 3600 * TimeSpan.TicksPerSecond)));
            TimeSpan late = model.Deadline(now, delay) - (now + delay);
            Assert.True(late <= model.MaxLateness(delay), $"armed at {now} for {delay}: {late} late, more than {model.MaxLateness(delay)}");
        }
    }
}
