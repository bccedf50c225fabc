namespace TcpLab.Stack.Time;

/// <summary>
/// A discrete-event scheduler in virtual time. Every stack, wire and fault stage of one
/// simulation shares this loop; it runs posted work at the current instant, then jumps
/// straight to the next timer. A 131-second SYN retry experiment therefore takes
/// milliseconds, and with the same seed every run executes the same events in the same order,
/// so its captures are byte-identical.
/// <para>Single-threaded: everything, application code included, runs on the caller's thread
/// inside <see cref="RunUntil(Instant)"/>.</para>
/// </summary>
public sealed class SimulatedEventLoop : EventLoop
{
    /// <summary>Fixed wall-clock epoch so simulated captures carry the same timestamps every run.</summary>
    public static readonly DateTimeOffset DefaultEpoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly Queue<(SendOrPostCallback Callback, object? State)> _posted = new();
    private Instant _now;
    private int _runningThread;

    public SimulatedEventLoop(DateTimeOffset? epoch = null) : base(epoch ?? DefaultEpoch) { }

    public override Instant Now => _now;

    /// <summary>True while <see cref="RunUntil(Instant)"/> runs, and on the thread that runs it.</summary>
    public override bool IsOnLoop => _runningThread == 0 || _runningThread == Environment.CurrentManagedThreadId;

    /// <summary>Number of timer callbacks and posted items run so far.</summary>
    public long EventsRun { get; private set; }

    public override void Post(SendOrPostCallback callback, object? state) => _posted.Enqueue((callback, state));

    /// <summary>
    /// Starts application code on the loop, so that its awaits resume on the loop (through the
    /// loop's SynchronizationContext) and the whole simulation stays on one thread, in order.
    /// The returned task completes when <paramref name="application"/> does.
    /// </summary>
    public Task Spawn(Func<Task> application)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(async () =>
        {
            try
            {
                await application();
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        return done.Task;
    }

    /// <summary>True when nothing is posted and no timer is armed: the simulation has ended.</summary>
    public bool IsIdle => _posted.Count == 0 && Timers.Count == 0;

    /// <summary>
    /// Runs every event due up to and including <paramref name="limit"/>, then sets the clock to
    /// <paramref name="limit"/>. Returns false if <paramref name="stop"/> became true first.
    /// </summary>
    public bool RunUntil(Instant limit, Func<bool>? stop = null)
    {
        int previous = _runningThread;
        _runningThread = Environment.CurrentManagedThreadId;
        SynchronizationContext? outer = System.Threading.SynchronizationContext.Current;
        System.Threading.SynchronizationContext.SetSynchronizationContext(SynchronizationContext);
        try
        {
            while (true)
            {
                RunPosted();
                if (stop?.Invoke() == true) return false;
                Instant? next = Timers.NextDeadline();
                if (next is not { } due || due > limit) break;
                _now = Instant.Max(_now, due);
                EventsRun += Timers.Advance(_now);
            }
            if (limit != Instant.MaxValue) _now = Instant.Max(_now, limit);
            return true;
        }
        finally
        {
            System.Threading.SynchronizationContext.SetSynchronizationContext(outer);
            _runningThread = previous;
        }
    }

    public bool RunFor(TimeSpan duration, Func<bool>? stop = null) => RunUntil(_now + duration, stop);

    /// <summary>Runs until no event is left (or <paramref name="limit"/> is reached).</summary>
    public void RunUntilIdle(Instant? limit = null) => RunUntil(limit ?? Instant.MaxValue);

    private void RunPosted()
    {
        while (_posted.TryDequeue(out var item))
        {
            EventsRun++;
            item.Callback(item.State);
        }
    }
}
