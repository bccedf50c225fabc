using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using TcpLab.Stack.Interop;

namespace TcpLab.Stack.Time;

/// <summary>
/// The event loop of a stack attached to real devices: one dedicated thread ("tcplab-loop")
/// that runs posted work, fires due timers, then sleeps in epoll until the next timer deadline
/// or until a registered descriptor (a TAP, a packet socket) becomes readable.
/// <para>
/// <see cref="Now"/> follows CLOCK_MONOTONIC (Stopwatch) from the moment the loop was created;
/// <see cref="EventLoop.Epoch"/> is the wall clock at that moment. While a frame link's handler
/// runs (<see cref="RegisterDrainable"/>), it stands still at the time the frame being handled
/// was read (<see cref="RefreshNow"/>), so everything a frame causes happens at one instant, as
/// Linux reads tcp_mstamp once per packet (tcp_mstamp_refresh) and as simulated time stands
/// still during a callback; a full-sized frame used to cost about ten clock reads. Elsewhere
/// (posted work, timers, other descriptors, other threads) it is the clock, so code that makes
/// a system call and then asks the time gets a time after the call.
/// </para>
/// <para>
/// Descriptors: a readable descriptor is watched through epoll. One registered with
/// <see cref="RegisterDrainable"/> whose handler stops with frames still queued is taken out of
/// epoll and polled every turn until it reads empty, as NAPI keeps a device's interrupt off
/// while it polls (napi_complete_done re-enables it): while it is out, the kernel queuing a
/// frame for us no longer runs our epoll callback under a spinlock with interrupts off
/// (sock_def_readable, ep_poll_callback), which cost more per frame than the read itself.
/// </para>
/// <para>
/// Threading: <see cref="Post"/>, <see cref="Invoke"/>, <see cref="RegisterReadable"/>,
/// <see cref="Stop"/> and <see cref="Dispose"/> may be called from any thread. Everything else,
/// timers included (<see cref="TimerWheel"/> takes no locks), belongs to the loop thread.
/// </para>
/// <para>
/// Failure: an exception thrown by a callback (posted work, a timer, a readable handler) stops
/// the loop. It is never swallowed: <see cref="Completion"/> faults with it and
/// <see cref="Stop"/> rethrows it. <see cref="Dispose"/> does not throw (it usually runs in a
/// finally block, where throwing would hide the exception that got there), so code that only
/// disposes the loop should check <see cref="Completion"/>.
/// </para>
/// </summary>
public sealed unsafe class RealTimeEventLoop : EventLoop, IDisposable
{
    private const int MaxEventsPerWait = 64;

    // Posted work that re-posts itself must not starve timers and I/O: run at most this many
    // items per turn, then look at timers and descriptors (without sleeping) before the rest.
    private const int MaxPostedPerTurn = 1024;

    // epoll_event.data of the wake-up eventfd; descriptors use their number, never this.
    private const ulong WakeToken = ulong.MaxValue;

    private readonly long _startTimestamp;
    private readonly FileDescriptor _epoll;
    private readonly FileDescriptor _wakeEvent;
    private readonly ConcurrentQueue<(SendOrPostCallback Callback, object? State)> _posted = new();
    private readonly ConcurrentDictionary<int, Watch> _readable = new();
    private readonly List<Watch> _polled = new();   // drainable descriptors out of epoll, loop thread only
    private readonly EpollEvent[] _events = GC.AllocateArray<EpollEvent>(MaxEventsPerWait, pinned: true);
    private readonly Thread _thread;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int _started;
    private volatile bool _threadStarted;
    private int _disposed;
    private volatile bool _stopRequested;
    private volatile bool _running;
    private Instant _frameTime;   // see Now
    private bool _inFrameHandler;

    // 1 while the loop may be asleep in epoll. A poster that swaps it to 0 owns the wake-up,
    // so a burst of posts writes the eventfd once, and posts to a busy loop never do.
    private int _mayBeSleeping;

    public RealTimeEventLoop() : this(DateTimeOffset.UtcNow, Stopwatch.GetTimestamp()) { }

    private RealTimeEventLoop(DateTimeOffset epoch, long startTimestamp) : base(epoch)
    {
        EpollEvent.EnsureLayoutMatchesPlatform();
        _startTimestamp = startTimestamp;
        _epoll = LibC.EpollCreate1(LibC.EPOLL_CLOEXEC);
        if (_epoll.IsInvalid) throw SystemError.LastAsException("epoll_create1");
        _wakeEvent = LibC.EventFd(0, LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC);
        if (_wakeEvent.IsInvalid)
        {
            ErrnoException error = SystemError.LastAsException("eventfd");
            _epoll.Dispose();
            throw error;
        }
        var wake = new EpollEvent { Events = LibC.EPOLLIN, Data = WakeToken };
        if (LibC.EpollCtl(_epoll, LibC.EPOLL_CTL_ADD, _wakeEvent, &wake) < 0)
        {
            ErrnoException error = SystemError.LastAsException("epoll_ctl ADD eventfd");
            CloseDescriptors();
            throw error;
        }
        _thread = new Thread(Run) { Name = "tcplab-loop", IsBackground = true };
    }

    /// <summary>
    /// Monotonic time since the loop was created: in a frame link's handler, when the frame being
    /// handled was read; elsewhere, the clock now (see the class summary).
    /// </summary>
    public override Instant Now => _inFrameHandler && IsOnLoop ? _frameTime : ReadClock();

    /// <summary>
    /// Reads the clock and makes it <see cref="Now"/> until the next call or the handler's end. A
    /// <see cref="RegisterDrainable"/> handler calls it for each frame it reads (the loop calls it
    /// as the handler starts). Loop thread only.
    /// </summary>
    public Instant RefreshNow()
    {
        Debug.Assert(IsOnLoop);
        return _frameTime = ReadClock();
    }

    private Instant ReadClock() => new(ToNanoseconds(Stopwatch.GetTimestamp() - _startTimestamp));

    /// <summary>The instant of a CLOCK_MONOTONIC reading (in ns), such as a kernel trace event's "mono" timestamp.</summary>
    public Instant FromMonotonic(long monotonicNanoseconds) => new(monotonicNanoseconds - ToNanoseconds(_startTimestamp));

    public override bool IsOnLoop => Environment.CurrentManagedThreadId == _thread.ManagedThreadId;

    /// <summary>True from <see cref="Start"/> until the loop thread has finished.</summary>
    public bool IsRunning => _running;

    /// <summary>
    /// Completes when the loop thread has finished: successfully after <see cref="Stop"/>, or
    /// faulted with the exception a callback threw.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>Starts the loop thread. A loop runs once: it cannot be restarted after it stopped.</summary>
    public void Start()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (Interlocked.Exchange(ref _started, 1) != 0) throw new InvalidOperationException("the loop was already started or stopped");
        _running = true;
        _thread.Start();
        _threadStarted = true;
    }

    /// <summary>
    /// Queues <paramref name="callback"/> to run on the loop thread after the work already
    /// queued (FIFO). Thread-safe and allocation-free. Work posted after <see cref="Stop"/> is
    /// dropped; work posted before <see cref="Start"/> runs once the loop starts.
    /// </summary>
    public override void Post(SendOrPostCallback callback, object? state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (_stopRequested) return;
        _posted.Enqueue((callback, state));
        // Enqueue then read the flag; the loop sets the flag then reads the queue. Both sides
        // use interlocked operations (full fences), so at least one sees the other's write.
        if (Interlocked.Exchange(ref _mayBeSleeping, 0) == 1) WakeUp();
    }

    /// <summary>Runs <paramref name="function"/> on the loop, waits, and returns its result (see <see cref="Invoke(Action)"/>).</summary>
    public T Invoke<T>(Func<T> function)
    {
        T result = default!;
        Invoke(() => { result = function(); });
        return result;
    }

    /// <summary>
    /// Runs <paramref name="action"/> on the loop thread and waits for it; its exception, if
    /// any, is rethrown here and does not stop the loop. Runs inline when called on the loop
    /// thread or when the loop is not running, since nothing else can be on the loop then.
    /// </summary>
    public void Invoke(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        if (IsOnLoop || !_running)
        {
            action();
            return;
        }
        var call = new PendingInvoke(action);
        Post(static state => ((PendingInvoke)state!).TryRun(), call);
        Task.WaitAny(call.Done, Completion);
        // If the loop ended before reaching the call, nothing runs on it any more: run it here.
        call.TryRun();
        call.Done.GetAwaiter().GetResult();
    }

    /// <summary>
    /// Calls <paramref name="onReadable"/> on the loop thread whenever <paramref name="fd"/> is
    /// readable (level-triggered, so the callback may stop early and be called again; it
    /// normally reads until EAGAIN). Also called on EPOLLERR/EPOLLHUP, which a read reports.
    /// </summary>
    public void RegisterReadable(FileDescriptor fd, Action onReadable)
    {
        ArgumentNullException.ThrowIfNull(onReadable);
        Register(fd, () =>
        {
            onReadable();
            return true;
        }, frames: false);
    }

    /// <summary>
    /// Like <see cref="RegisterReadable"/>, for a frame link's handler, which reads a bounded
    /// batch of frames and says whether it read the descriptor empty (EAGAIN: true) or stopped
    /// with more queued (false). After false, the loop stops watching the descriptor through
    /// epoll and calls <paramref name="drain"/> once every turn, before it looks at other
    /// descriptors, until it returns true; then epoll watches it again. While the handler runs,
    /// <see cref="Now"/> is frame time (see the class summary).
    /// </summary>
    public void RegisterDrainable(FileDescriptor fd, Func<bool> drain) => Register(fd, drain, frames: true);

    private void Register(FileDescriptor fd, Func<bool> drain, bool frames)
    {
        ArgumentNullException.ThrowIfNull(fd);
        ArgumentNullException.ThrowIfNull(drain);
        int number = fd.Number;
        // Into the table first: the loop may see the descriptor ready as soon as epoll_ctl returns.
        if (!_readable.TryAdd(number, new Watch(fd, drain, frames))) throw new InvalidOperationException($"{fd} is already registered");
        if (!TryWatch(fd, out Errno errno))
        {
            _readable.TryRemove(number, out _);
            throw new ErrnoException($"epoll_ctl ADD {fd}", errno);
        }
    }

    private bool TryWatch(FileDescriptor fd, out Errno errno)
    {
        var interest = new EpollEvent { Events = LibC.EPOLLIN, Data = (ulong)fd.Number };
        errno = LibC.EpollCtl(_epoll, LibC.EPOLL_CTL_ADD, fd, &interest) < 0 ? SystemError.Last : default;
        return errno == default;
    }

    /// <summary>
    /// Stops watching <paramref name="fd"/>. Called on the loop thread, the callback is not
    /// called again once this returns; from another thread, a call already under way may finish.
    /// A descriptor registered with <see cref="RegisterDrainable"/> is unregistered on the loop thread.
    /// </summary>
    public void UnregisterReadable(FileDescriptor fd)
    {
        ArgumentNullException.ThrowIfNull(fd);
        if (!_readable.TryRemove(fd.Number, out Watch? watch)) return;
        // A polled descriptor is out of epoll already; the loop drops it from its list.
        if (watch.Polled) return;
        if (_epoll.IsClosed) return; // a disposed loop's interest list went with its epoll fd
        if (LibC.EpollCtl(_epoll, LibC.EPOLL_CTL_DEL, fd, null) < 0) throw SystemError.LastAsException($"epoll_ctl DEL {fd}");
    }

    /// <summary>
    /// Asks the loop to finish its current turn and exit, and, from any other thread, waits for
    /// the loop thread to end. Idempotent. If a callback's exception stopped the loop, rethrows
    /// it (every call: the loop's outcome does not change).
    /// </summary>
    public void Stop()
    {
        StopAndJoin();
        if (!IsOnLoop && Completion.Exception?.InnerException is { } failure) ExceptionDispatchInfo.Throw(failure);
    }

    /// <summary>Stops the loop (without rethrowing, see the class summary) and closes its descriptors. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        StopAndJoin();
        // From a callback on the loop thread the loop is still running: it closes them as it exits.
        if (!IsOnLoop) CloseDescriptors();
    }

    private void StopAndJoin()
    {
        _stopRequested = true;
        if (Interlocked.CompareExchange(ref _started, 1, 0) == 0)
        {
            _completion.TrySetResult(); // never started, and now never will
            return;
        }
        // Not yet started (Start racing Stop, which callers must not do), or called from a
        // callback: nothing to wait for here.
        if (!_threadStarted || IsOnLoop) return;
        WakeUp();
        _thread.Join();
    }

    private void Run()
    {
        SynchronizationContext.SetSynchronizationContext(SynchronizationContext);
        Exception? failure = null;
        try
        {
            while (!_stopRequested)
            {
                RunPosted();
                Timers.Advance(Now);
                DrainPolled();
                WaitAndDispatch();
            }
        }
        catch (Exception e)
        {
            failure = e;
            _stopRequested = true;
        }
        _running = false;
        if (_disposed != 0) CloseDescriptors();
        if (failure is null) _completion.TrySetResult();
        else _completion.TrySetException(failure);
    }

    private void RunPosted()
    {
        for (int i = 0; i < MaxPostedPerTurn && _posted.TryDequeue(out var item); i++)
            item.Callback(item.State);
    }

    /// <summary>Calls each polled descriptor's handler once; one that read empty goes back to epoll.</summary>
    private void DrainPolled()
    {
        for (int i = 0; i < _polled.Count;)
        {
            Watch watch = _polled[i];
            if (IsRegistered(watch) && !RunHandler(watch))
            {
                i++;
                continue;
            }
            _polled.RemoveAt(i);
            watch.Polled = false;
            // Unless it was unregistered meanwhile (by its own handler, say), back to epoll, which
            // reports it at once if something arrived since the handler's last read.
            if (IsRegistered(watch) && !TryWatch(watch.Fd, out Errno errno)) throw new ErrnoException($"epoll_ctl ADD {watch.Fd}", errno);
        }
    }

    /// <summary>Calls a ready descriptor's handler; if it stopped with more queued, takes it out of epoll and polls it.</summary>
    private void Dispatch(Watch watch)
    {
        if (RunHandler(watch) || !IsRegistered(watch)) return;
        // EPOLL_CTL_DEL removes our entry from the descriptor's wait queue, so the producer stops
        // calling into epoll for each frame it queues.
        if (LibC.EpollCtl(_epoll, LibC.EPOLL_CTL_DEL, watch.Fd, null) < 0) throw SystemError.LastAsException($"epoll_ctl DEL {watch.Fd}");
        watch.Polled = true;
        _polled.Add(watch);
    }

    /// <summary>Calls a descriptor's handler; a frame link's in frame time.</summary>
    private bool RunHandler(Watch watch)
    {
        if (!watch.Frames) return watch.Drain();
        RefreshNow();
        _inFrameHandler = true;
        try
        {
            return watch.Drain();
        }
        finally
        {
            _inFrameHandler = false;
        }
    }

    private void WaitAndDispatch()
    {
        long timeout = NanosecondsUntilNextEvent();
        if (timeout != 0)
        {
            Interlocked.Exchange(ref _mayBeSleeping, 1);
            if (!_posted.IsEmpty || _stopRequested) timeout = 0;
        }
        int ready;
        fixed (EpollEvent* events = _events)
            ready = Epoll.Wait(_epoll, events, MaxEventsPerWait, timeout);
        Volatile.Write(ref _mayBeSleeping, 0);

        if (ready < 0)
        {
            Errno errno = SystemError.Last;
            if (errno == Errno.EINTR) return;
            throw new ErrnoException("epoll_wait", errno);
        }
        for (int i = 0; i < ready; i++)
        {
            ulong token = _events[i].Data;
            if (token == WakeToken) DrainWakeEvent();
            // A callback earlier in this batch may have unregistered this descriptor.
            else if (_readable.TryGetValue((int)token, out Watch? watch) && !watch.Polled) Dispatch(watch);
        }
    }

    /// <summary>0 to poll, -1 to sleep until a descriptor is ready, else the time to the next timer.</summary>
    private long NanosecondsUntilNextEvent()
    {
        if (!_posted.IsEmpty || _polled.Count > 0) return 0;
        if (Timers.NextDeadline() is not { } deadline) return -1;
        return Math.Max(0, deadline.Nanoseconds - Now.Nanoseconds);
    }

    private void WakeUp()
    {
        ulong one = 1;
        try
        {
            // Fails only with EAGAIN when the counter is saturated, i.e. already readable.
            LibC.Write(_wakeEvent, (byte*)&one, sizeof(ulong));
        }
        catch (ObjectDisposedException)
        {
            // Post raced Dispose: there is no loop left to wake.
        }
    }

    private void DrainWakeEvent()
    {
        ulong count;
        LibC.Read(_wakeEvent, (byte*)&count, sizeof(ulong)); // EAGAIN: another read drained it
    }

    private void CloseDescriptors()
    {
        _wakeEvent.Dispose();
        _epoll.Dispose();
    }

    private static long ToNanoseconds(long stopwatchTicks) =>
        Stopwatch.Frequency == 1_000_000_000
            ? stopwatchTicks // Linux: Stopwatch reads CLOCK_MONOTONIC in nanoseconds
            : (long)((Int128)stopwatchTicks * 1_000_000_000 / Stopwatch.Frequency);

    private bool IsRegistered(Watch watch) => _readable.TryGetValue(watch.Fd.Number, out Watch? current) && current == watch;

    /// <summary>A registered descriptor and its handler (true: read empty).</summary>
    private sealed class Watch(FileDescriptor fd, Func<bool> drain, bool frames)
    {
        public FileDescriptor Fd { get; } = fd;
        public Func<bool> Drain { get; } = drain;
        /// <summary>A frame link's (<see cref="RegisterDrainable"/>): polled when busy, run in frame time.</summary>
        public bool Frames { get; } = frames;
        /// <summary>Out of epoll, in the loop's polled list.</summary>
        public bool Polled { get; set; }
    }

    /// <summary>One <see cref="Invoke"/> call, run exactly once by whichever thread claims it.</summary>
    private sealed class PendingInvoke(Action action)
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _claimed;

        public Task Done => _done.Task;

        public void TryRun()
        {
            if (Interlocked.Exchange(ref _claimed, 1) != 0) return;
            try
            {
                action();
                _done.SetResult();
            }
            catch (Exception e)
            {
                _done.SetException(e);
            }
        }
    }
}
