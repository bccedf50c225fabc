using TcpLab.Stack.Time;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Stack.Tests.Time;

public class TimerWheelTests
{
    [Fact]
    public void Fires_each_timer_exactly_at_its_deadline_in_deadline_order()
    {
        var loop = new SimulatedEventLoop();
        var fired = new List<(int Id, Instant At)>();
        var deadlines = new[] { 5_000L, 1L, 63L, 64L, 4_095L, 4_096L, 262_144L, 7_200_000_000_000L, 64L };
        for (int i = 0; i < deadlines.Length; i++)
        {
            int id = i;
            loop.CreateTimer(() => fired.Add((id, loop.Now))).Arm(new Instant(deadlines[i]));
        }

        loop.RunUntilIdle();

        Assert.Equal(deadlines.Length, fired.Count);
        Assert.All(fired, f => Assert.Equal(deadlines[f.Id], f.At.Nanoseconds));
        Assert.Equal(fired.OrderBy(f => f.At).Select(f => f.At), fired.Select(f => f.At));
    }

    [Fact]
    public void Cancelled_and_rearmed_timers_fire_only_at_their_last_deadline()
    {
        var loop = new SimulatedEventLoop();
        var fired = new List<Instant>();
        Timer t = loop.CreateTimer(() => fired.Add(loop.Now));
        Timer cancelled = loop.CreateTimer(() => fired.Add(Instant.MaxValue));

        t.Arm(Instant.FromSeconds(10));
        cancelled.Arm(Instant.FromSeconds(1));
        t.Arm(Instant.FromSeconds(3)); // re-arm earlier
        cancelled.Cancel();

        loop.RunUntilIdle();

        Assert.Equal([Instant.FromSeconds(3)], fired);
        Assert.Equal(0, loop.Timers.Count);
    }

    [Fact]
    public void A_callback_can_cancel_a_timer_due_at_the_same_instant()
    {
        var loop = new SimulatedEventLoop();
        var fired = new List<string>();
        Timer? second = null;
        Timer first = loop.CreateTimer(() => { fired.Add("first"); second!.Cancel(); });
        second = loop.CreateTimer(() => fired.Add("second"));
        first.Arm(Instant.FromMilliseconds(200));
        second.Arm(Instant.FromMilliseconds(200));

        loop.RunUntilIdle();

        Assert.Equal(["first"], fired);
    }

    [Fact]
    public void Matches_a_sorted_reference_model_under_random_arms_cancels_and_rearms()
    {
        for (ulong seed = 1; seed <= 30; seed++)
        {
            var rng = new DeterministicRandom(seed);
            var loop = new SimulatedEventLoop();
            var expected = new Dictionary<int, long>(); // id -> deadline in ns, for armed timers
            var fired = new List<(int Id, long At)>();
            var timers = new Timer[200];
            for (int i = 0; i < timers.Length; i++)
            {
                int id = i;
                timers[i] = loop.CreateTimer(() =>
                {
                    fired.Add((id, loop.Now.Nanoseconds));
                    Assert.Equal(expected[id], loop.Now.Nanoseconds);
                    expected.Remove(id);
                    // Some callbacks re-arm themselves or others, like a retransmit timer does.
                    if (rng.NextDouble() < 0.3)
                    {
                        int other = rng.Next(0, timers.Length);
                        long at = loop.Now.Nanoseconds + RandomSpan(rng);
                        timers[other].Arm(new Instant(at));
                        expected[other] = at;
                    }
                });
            }
            for (int step = 0; step < 2_000; step++)
            {
                int id = rng.Next(0, timers.Length);
                if (rng.NextDouble() < 0.2)
                {
                    timers[id].Cancel();
                    expected.Remove(id);
                }
                else
                {
                    long at = loop.Now.Nanoseconds + RandomSpan(rng);
                    timers[id].Arm(new Instant(at));
                    expected[id] = at;
                }
                if (rng.NextDouble() < 0.1) loop.RunFor(TimeSpan.FromTicks(RandomSpan(rng) / 100));
            }
            loop.RunUntilIdle();
            Assert.Empty(expected);
            Assert.Equal(fired.Select(f => f.At).Order(), fired.Select(f => f.At));
        }
    }

    private static long RandomSpan(DeterministicRandom rng) => rng.Next(0, 5) switch
    {
        0 => rng.Next(0, 100),                          // same slot region
        1 => rng.Next(0, 1_000_000),                    // sub-millisecond
        2 => (long)rng.Next(0, 1_000_000) * 1_000,      // up to a second
        3 => (long)rng.Next(0, 200_000) * 1_000_000,    // up to 200 s
        _ => (long)rng.Next(0, 8_000) * 1_000_000_000,  // hours
    };
}
