namespace TcpLab.Stack.Time;

/// <summary>
/// The one thread a stack lives on. Frames in, timers due and application calls are all
/// processed here, in order, so the TCP engine takes no locks. The loop owns the clock:
/// <see cref="SimulatedEventLoop"/> jumps virtual time from event to event,
/// <c>RealTimeEventLoop</c> follows CLOCK_MONOTONIC and waits on file descriptors.
/// </summary>
public abstract class EventLoop
{
    protected EventLoop(DateTimeOffset epoch)
    {
        Epoch = epoch;
        SynchronizationContext = new EventLoopSynchronizationContext(this);
    }

    /// <summary>Current time on the loop's clock.</summary>
    public abstract Instant Now { get; }

    /// <summary>The wall-clock time of <see cref="Instant.Zero"/>, used only to stamp captures.</summary>
    public DateTimeOffset Epoch { get; }

    public TimerWheel Timers { get; } = new();

    /// <summary>Posts continuations of <c>await</c>s in application code back onto the loop.</summary>
    public SynchronizationContext SynchronizationContext { get; }

    /// <summary>True when called from the loop's own thread.</summary>
    public abstract bool IsOnLoop { get; }

    public Timer CreateTimer(Action callback) => new(Timers, callback);

    /// <summary>
    /// Runs <paramref name="callback"/> on the loop at the current time, after work already
    /// posted. Safe to call from any thread on a real-time loop.
    /// </summary>
    public abstract void Post(SendOrPostCallback callback, object? state);

    public void Post(Action action) => Post(static s => ((Action)s!)(), action);

    /// <summary>The wall-clock time of an instant on this loop's clock.</summary>
    public DateTimeOffset ToWallClock(Instant t) => Epoch.AddTicks(t.Nanoseconds / 100);
}

/// <summary>Makes <c>await</c> in code running on a loop resume on that loop.</summary>
public sealed class EventLoopSynchronizationContext(EventLoop loop) : SynchronizationContext
{
    public EventLoop Loop { get; } = loop;

    public override void Post(SendOrPostCallback d, object? state) => Loop.Post(d, state);

    public override void Send(SendOrPostCallback d, object? state)
    {
        if (Loop.IsOnLoop) d(state);
        else throw new NotSupportedException("synchronous Send onto an event loop from another thread");
    }

    public override SynchronizationContext CreateCopy() => this;
}
