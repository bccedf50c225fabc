using System.Diagnostics;
using System.Numerics;

namespace TcpLab.Stack.Time;

/// <summary>
/// A hierarchical timing wheel (Varghese and Lauck) with 1 ns ticks: 10 levels of 64 slots,
/// level <c>L</c> slots spanning 64^L ns, about 36 years in all. Arm, re-arm and cancel are
/// O(1) and allocate nothing, so every connection can keep its timers armed the way Linux keeps
/// icsk_retransmit_timer and friends, and 100k connections cost 100k list nodes, not OS timers.
/// <para>
/// Unlike Linux's non-cascading wheel (kernel/time/timer.c, which lets a timer fire late by its
/// level's granularity), entries cascade to lower levels as time approaches them, so every
/// timer fires at its exact nanosecond. That is what makes simulated timelines exact; the
/// kernel's lateness is modelled separately where a scenario asks for it.
/// </para>
/// <para>
/// A bitmap of occupied slots per level finds the next deadline without scanning, so the
/// simulation scheduler can jump virtual time from one event to the next (the design follows
/// tokio's time driver: an entry lives at the level given by the highest bit in which its
/// deadline differs from the wheel's current tick, so all entries of a lower level expire
/// before any entry of a higher level).
/// </para>
/// Not thread-safe: a wheel belongs to one event loop.
/// </summary>
public sealed class TimerWheel
{
    private const int SlotBits = 6;
    private const int SlotsPerLevel = 1 << SlotBits;
    private const int LevelCount = 10;
    private const long MaxTicks = (1L << (SlotBits * LevelCount)) - 1;

    private readonly Timer?[,] _slots = new Timer?[LevelCount, SlotsPerLevel];
    private readonly ulong[] _occupied = new ulong[LevelCount];

    // Entries taken out of an expiring slot and not yet fired; a callback may cancel or
    // re-arm any of them, so they stay on a real list rather than a local copy.
    private Timer? _pendingHead;

    /// <summary>The tick (ns) the wheel has advanced to; no armed entry is earlier.</summary>
    private long _elapsedTicks;

    public int Count { get; private set; }

    /// <summary>The instant of the last tick processed by <see cref="Advance"/>.</summary>
    public Instant Elapsed => new(_elapsedTicks);

    internal void Arm(Timer timer, Instant deadline)
    {
        if (timer.IsArmed) Unlink(timer);
        long tick = Math.Clamp(deadline.Nanoseconds, _elapsedTicks, _elapsedTicks + MaxTicks);
        timer.DeadlineTick = tick;
        Insert(timer);
        Count++;
    }

    internal void Cancel(Timer timer)
    {
        if (!timer.IsArmed) return;
        Unlink(timer);
        timer.Level = Timer.NotArmed;
    }

    /// <summary>
    /// The earliest deadline among armed timers, or null when none is armed. A timer due at or
    /// before <see cref="Elapsed"/> (armed in the past) reports <see cref="Elapsed"/>.
    /// </summary>
    public Instant? NextDeadline()
    {
        if (_pendingHead is not null) return Elapsed;
        return FindNextSlot(out _, out _, out long tick) ? new Instant(tick) : null;
    }

    /// <summary>
    /// Fires, in deadline order, every timer due at or before <paramref name="now"/>. Callbacks
    /// run with <see cref="Elapsed"/> equal to their own deadline, may arm and cancel timers
    /// (including ones due in this same call), and see the wheel in a consistent state.
    /// Returns the number of callbacks run.
    /// </summary>
    public int Advance(Instant now)
    {
        long nowTick = Math.Max(now.Nanoseconds, _elapsedTicks);
        int fired = 0;
        while (true)
        {
            if (_pendingHead is { } due)
            {
                Unlink(due);
                due.Level = Timer.NotArmed;
                fired++;
                due.Fire();
                continue;
            }
            if (!FindNextSlot(out int level, out int slot, out long slotTick) || slotTick > nowTick) break;

            _elapsedTicks = slotTick;
            Timer head = TakeSlot(level, slot);
            for (Timer? entry = head; entry is not null;)
            {
                Timer? next = entry.Next == head ? null : entry.Next;
                entry.Next = entry.Previous = null;
                if (level == 0 || entry.DeadlineTick <= _elapsedTicks) AppendPending(entry);
                else Insert(entry); // cascade towards level 0
                entry = next;
            }
        }
        _elapsedTicks = nowTick;
        return fired;
    }

    private void Insert(Timer timer)
    {
        int level = LevelFor(_elapsedTicks, timer.DeadlineTick);
        int slot = (int)((timer.DeadlineTick >> (level * SlotBits)) & (SlotsPerLevel - 1));
        timer.Level = level;
        timer.Slot = slot;
        ref Timer? head = ref _slots[level, slot];
        LinkBefore(ref head, timer);
        _occupied[level] |= 1UL << slot;
    }

    private void AppendPending(Timer timer)
    {
        timer.Level = Timer.Pending;
        LinkBefore(ref _pendingHead, timer);
    }

    /// <summary>Appends to a circular doubly-linked list whose head is <paramref name="head"/>.</summary>
    private static void LinkBefore(ref Timer? head, Timer timer)
    {
        if (head is null)
        {
            timer.Next = timer.Previous = timer;
            head = timer;
            return;
        }
        Timer tail = head.Previous!;
        timer.Previous = tail;
        timer.Next = head;
        tail.Next = timer;
        head.Previous = timer;
    }

    private void Unlink(Timer timer)
    {
        Debug.Assert(timer.IsArmed);
        ref Timer? head = ref timer.Level == Timer.Pending ? ref _pendingHead : ref _slots[timer.Level, timer.Slot];
        if (timer.Next == timer)
        {
            head = null;
            if (timer.Level != Timer.Pending) _occupied[timer.Level] &= ~(1UL << timer.Slot);
        }
        else
        {
            timer.Previous!.Next = timer.Next;
            timer.Next!.Previous = timer.Previous;
            if (head == timer) head = timer.Next;
        }
        timer.Next = timer.Previous = null;
        Count--;
    }

    private Timer TakeSlot(int level, int slot)
    {
        Timer head = _slots[level, slot]!;
        _slots[level, slot] = null;
        _occupied[level] &= ~(1UL << slot);
        return head;
    }

    /// <summary>
    /// The first occupied slot at or after the current position, searching from level 0 up:
    /// entries of a lower level always expire before those of a higher one.
    /// </summary>
    private bool FindNextSlot(out int level, out int slot, out long slotTick)
    {
        for (level = 0; level < LevelCount; level++)
        {
            ulong occupied = _occupied[level];
            if (occupied == 0) continue;
            int shift = level * SlotBits;
            int current = (int)((_elapsedTicks >> shift) & (SlotsPerLevel - 1));
            // Rotate so the current slot is bit 0; entries never sit behind the current slot.
            ulong rotated = BitOperations.RotateRight(occupied, current);
            slot = (current + BitOperations.TrailingZeroCount(rotated)) & (SlotsPerLevel - 1);
            long levelRange = 1L << (shift + SlotBits);
            long levelStart = _elapsedTicks & ~(levelRange - 1);
            slotTick = Math.Max(levelStart + ((long)slot << shift), _elapsedTicks);
            return true;
        }
        slot = 0;
        slotTick = 0;
        return false;
    }

    private static int LevelFor(long elapsed, long deadline)
    {
        long masked = (elapsed ^ deadline) | (SlotsPerLevel - 1);
        int significant = 63 - BitOperations.LeadingZeroCount((ulong)masked);
        return Math.Min(significant / SlotBits, LevelCount - 1);
    }
}

/// <summary>
/// One restartable timer, owned by whoever created it (a connection keeps one object per
/// timer for its whole life), so arming allocates nothing.
/// </summary>
public sealed class Timer
{
    internal const int NotArmed = -1;
    internal const int Pending = -2;

    private readonly TimerWheel _wheel;
    private readonly Action _callback;

    internal Timer? Next;
    internal Timer? Previous;
    internal int Level = NotArmed;
    internal int Slot;
    internal long DeadlineTick;

    public Timer(TimerWheel wheel, Action callback)
    {
        _wheel = wheel;
        _callback = callback;
    }

    public bool IsArmed => Level != NotArmed;

    /// <summary>When the timer will fire, if armed.</summary>
    public Instant Deadline => new(DeadlineTick);

    /// <summary>Arms or re-arms the timer; a deadline in the past fires on the next advance.</summary>
    public void Arm(Instant deadline) => _wheel.Arm(this, deadline);

    public void Cancel() => _wheel.Cancel(this);

    internal void Fire() => _callback();
}
