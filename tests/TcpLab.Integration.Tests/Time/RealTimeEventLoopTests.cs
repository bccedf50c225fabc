using System.Collections.Concurrent;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Time;

namespace TcpLab.Integration.Tests.Time;

/// <summary>
/// The real-time loop on a real epoll. Assertions are about order, threads and outcomes, never
/// about how long anything took; timeouts only guard against hangs.
/// </summary>
public class RealTimeEventLoopTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Work_posted_from_other_threads_runs_on_the_loop_thread_in_fifo_order()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        const int PerThread = 2_000;
        var ran = new ConcurrentQueue<(int Poster, int Sequence, bool OnLoop, bool LoopContext)>();

        Thread[] posters = Enumerable.Range(0, 2).Select(poster => new Thread(() =>
        {
            for (int i = 0; i < PerThread; i++)
            {
                int sequence = i;
                loop.Post(() => ran.Enqueue((poster, sequence, loop.IsOnLoop,
                    SynchronizationContext.Current == loop.SynchronizationContext)));
            }
        })).ToArray();
        foreach (Thread t in posters) t.Start();
        foreach (Thread t in posters) t.Join();
        var drained = new TaskCompletionSource();
        loop.Post(drained.SetResult);
        await drained.Task.WaitAsync(HangGuard);

        Assert.Equal(2 * PerThread, ran.Count);
        Assert.All(ran, r => Assert.True(r.OnLoop && r.LoopContext));
        foreach (int poster in new[] { 0, 1 })
            Assert.Equal(Enumerable.Range(0, PerThread), ran.Where(r => r.Poster == poster).Select(r => r.Sequence));
        Assert.False(loop.IsOnLoop);
    }

    [Fact]
    public async Task Timers_fire_in_deadline_order_and_never_before_their_deadline()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        int[] delaysMs = [30, 5, 20, 0, 10, 25];
        var fired = new List<(int DelayMs, Instant Deadline, Instant At)>();
        var allFired = new TaskCompletionSource();

        loop.Invoke(() =>
        {
            Instant start = loop.Now;
            foreach (int delay in delaysMs)
            {
                Instant deadline = start + TimeSpan.FromMilliseconds(delay);
                loop.CreateTimer(() =>
                {
                    fired.Add((delay, deadline, loop.Now));
                    if (fired.Count == delaysMs.Length) allFired.SetResult();
                }).Arm(deadline);
            }
        });

        await allFired.Task.WaitAsync(HangGuard);
        Assert.Equal(delaysMs.Order(), fired.Select(f => f.DelayMs));
        Assert.All(fired, f => Assert.True(f.At >= f.Deadline, $"timer for {f.DelayMs} ms fired at {f.At}, before {f.Deadline}"));
    }

    [Fact]
    public async Task Await_in_work_on_the_loop_resumes_on_the_loop_thread()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        var resumedOnLoop = new TaskCompletionSource<bool>();
        loop.Post(async () =>
        {
            await Task.Delay(1); // completes on a thread-pool thread
            resumedOnLoop.SetResult(loop.IsOnLoop);
        });
        Assert.True(await resumedOnLoop.Task.WaitAsync(HangGuard));
    }

    [Fact]
    public async Task A_readable_descriptor_is_dispatched_on_the_loop_thread()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        using FileDescriptor eventFd = NewEventFd();
        var read = new TaskCompletionSource<(ulong Value, bool OnLoop)>();
        loop.RegisterReadable(eventFd, () => read.TrySetResult((ReadCounter(eventFd), loop.IsOnLoop)));

        Assert.Equal(sizeof(ulong), WriteCounter(eventFd, 7));

        Assert.Equal((7UL, true), await read.Task.WaitAsync(HangGuard));
        loop.Invoke(() => loop.UnregisterReadable(eventFd));
    }

    [Fact]
    public async Task An_exception_in_posted_work_stops_the_loop_and_surfaces_from_Completion_and_Stop()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        loop.Post(() => throw new InvalidOperationException("boom from posted work"));

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => loop.Completion.WaitAsync(HangGuard));
        Assert.Equal("boom from posted work", failure.Message);
        Assert.False(loop.IsRunning);
        var error = Assert.Throws<InvalidOperationException>(loop.Stop);
        Assert.Equal("boom from posted work", error.Message);
        Assert.Throws<InvalidOperationException>(loop.Stop); // every call reports the same outcome
    }

    [Fact]
    public async Task An_exception_in_a_timer_callback_surfaces()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        loop.Invoke(() => loop.CreateTimer(() => throw new ArithmeticException("boom from a timer"))
            .Arm(loop.Now + TimeSpan.FromMilliseconds(1)));

        var failure = await Assert.ThrowsAsync<ArithmeticException>(() => loop.Completion.WaitAsync(HangGuard));
        Assert.Equal("boom from a timer", failure.Message);
        Assert.Equal("boom from a timer", Assert.Throws<ArithmeticException>(loop.Stop).Message);
    }

    [Fact]
    public void An_exception_in_Invoke_goes_to_the_caller_and_the_loop_keeps_running()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        Assert.Throws<FormatException>(() => loop.Invoke(() => throw new FormatException("for the caller")));
        bool onLoop = false;
        loop.Invoke(() => onLoop = loop.IsOnLoop);
        Assert.True(onLoop);
        Assert.True(loop.IsRunning);
    }

    [Fact]
    public void Stop_is_idempotent_and_a_stopped_loop_cannot_restart()
    {
        var loop = new RealTimeEventLoop();
        loop.Start();
        loop.Stop();
        loop.Stop();
        Assert.True(loop.Completion.IsCompletedSuccessfully);
        Assert.False(loop.IsRunning);
        Assert.Throws<InvalidOperationException>(loop.Start);

        bool ran = false;
        loop.Post(() => ran = true); // dropped: nothing runs after Stop
        loop.Dispose();
        loop.Dispose();
        Assert.False(ran);
    }

    [Fact]
    public void Stop_before_Start_completes_without_a_thread()
    {
        using var loop = new RealTimeEventLoop();
        loop.Stop();
        Assert.True(loop.Completion.IsCompletedSuccessfully);
        Assert.Throws<InvalidOperationException>(loop.Start);
    }

    [Fact]
    public void Now_is_monotonic_and_Epoch_is_the_wall_clock_at_creation()
    {
        DateTimeOffset before = DateTimeOffset.UtcNow;
        using var loop = new RealTimeEventLoop();
        DateTimeOffset after = DateTimeOffset.UtcNow;
        Assert.InRange(loop.Epoch, before, after);
        Instant first = loop.Now;
        Instant second = loop.Now;
        Assert.True(first >= Instant.Zero && second >= first);
    }

    [Fact]
    public async Task In_a_frame_handler_Now_stands_still_until_refreshed_and_elsewhere_it_is_the_clock()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        using FileDescriptor queue = NewEventFd();
        var seen = new TaskCompletionSource<(Instant Start, Instant AfterWork, Instant Refreshed, Instant AfterRefresh)>();
        loop.RegisterDrainable(queue, () =>
        {
            ReadCounter(queue);
            Instant start = loop.Now;
            Thread.Sleep(2);   // work on a frame does not move the frame's time
            Instant afterWork = loop.Now;
            Instant refreshed = loop.RefreshNow();   // the next frame's
            seen.TrySetResult((start, afterWork, refreshed, loop.Now));
            return true;
        });
        var (postedStart, postedAfterWork) = loop.Invoke(() =>
        {
            Instant before = loop.Now;
            Thread.Sleep(2);
            return (before, loop.Now);
        });
        Assert.Equal(sizeof(ulong), WriteCounter(queue, 1));
        var frame = await seen.Task.WaitAsync(HangGuard);
        loop.Invoke(() => loop.UnregisterReadable(queue));

        Assert.Equal(frame.Start, frame.AfterWork);
        Assert.True(frame.Refreshed >= frame.Start + TimeSpan.FromMilliseconds(2), $"refreshed to {frame.Refreshed}, began at {frame.Start}");
        Assert.Equal(frame.Refreshed, frame.AfterRefresh);
        Assert.True(postedAfterWork >= postedStart + TimeSpan.FromMilliseconds(2), "posted work reads the clock");
    }

    [Fact]
    public async Task A_drainable_descriptor_left_with_data_is_polled_outside_epoll_until_it_reads_empty()
    {
        using var loop = new RealTimeEventLoop();
        loop.Start();
        // A semaphore eventfd: each read takes 1 from the counter, so it reads like a queue of frames.
        using FileDescriptor queue = NewEventFd(EfdSemaphore);
        var calls = new List<(int Read, bool Empty, bool WatchedByEpoll)>();
        var drained = new TaskCompletionSource();
        loop.RegisterDrainable(queue, () =>
        {
            // Budget of one "frame" per call, like FileDescriptorLink's 64.
            bool empty = ReadCounter(queue) == 0;
            calls.Add((calls.Count, empty, WatchedByAnEpoll(queue.Number)));
            if (empty && calls.Count > 1) drained.TrySetResult();
            return empty;
        });

        Assert.Equal(sizeof(ulong), WriteCounter(queue, 4));
        await drained.Task.WaitAsync(HangGuard);
        bool watchedAgain = loop.Invoke(() => WatchedByAnEpoll(queue.Number));

        // Four reads that found data, then the empty one; the first came through epoll, the
        // others from the loop's polling with the descriptor out of epoll.
        Assert.Equal([false, false, false, false, true], calls.Select(c => c.Empty));
        Assert.True(calls[0].WatchedByEpoll);
        Assert.All(calls.Skip(1), c => Assert.False(c.WatchedByEpoll, $"call {c.Read} found the descriptor still in epoll"));
        Assert.True(watchedAgain, "after it read empty, epoll watches it again");

        // Back in epoll, new data wakes it.
        var woken = new TaskCompletionSource();
        loop.Invoke(() => calls.Clear());
        drained = woken;
        Assert.Equal(sizeof(ulong), WriteCounter(queue, 1));
        await woken.Task.WaitAsync(HangGuard);
        loop.Invoke(() => loop.UnregisterReadable(queue));
        Assert.Equal([false, true], calls.Select(c => c.Empty));
    }

    private const int EfdSemaphore = 1;   // linux/eventfd.h

    private static FileDescriptor NewEventFd(int flags = 0)
    {
        FileDescriptor fd = LibC.EventFd(0, flags | LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC);
        Assert.False(fd.IsInvalid);
        return fd;
    }

    /// <summary>Whether any epoll instance of this process has <paramref name="fd"/> in its interest list (/proc fdinfo "tfd:" lines).</summary>
    private static bool WatchedByAnEpoll(int fd) =>
        Directory.EnumerateFiles("/proc/self/fdinfo").Any(info =>
        {
            try
            {
                return File.ReadLines(info).Any(line => line.StartsWith("tfd:", StringComparison.Ordinal)
                                                        && line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] == fd.ToString());
            }
            catch (IOException)
            {
                return false;   // a descriptor closed while we looked
            }
        });

    private static unsafe int WriteCounter(FileDescriptor eventFd, ulong value) =>
        (int)LibC.Write(eventFd, (byte*)&value, sizeof(ulong));

    private static unsafe ulong ReadCounter(FileDescriptor eventFd)
    {
        ulong value;
        return LibC.Read(eventFd, (byte*)&value, sizeof(ulong)) == sizeof(ulong) ? value : 0;
    }
}
