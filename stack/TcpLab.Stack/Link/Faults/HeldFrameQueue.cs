using TcpLab.Stack.Buffers;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link.Faults;

/// <summary>A frame a <see cref="FaultStage"/> holds back: delayed, or waiting to be overtaken.</summary>
internal struct HeldFrame
{
    /// <summary>Set on delayed frames: they wait for their deadline only.</summary>
    public const long NotByPasses = long.MaxValue;

    /// <summary>When the frame goes on at the latest (the delay, or the reorder timeout).</summary>
    public Instant ReleaseAt;

    /// <summary>Hold order: frames due at the same instant go on in the order they were held.</summary>
    public long Order;

    public FaultDirection Direction;

    /// <summary>A reorder hold goes on once its direction's pass count reaches this; <see cref="NotByPasses"/> otherwise.</summary>
    public long ReleaseAtPass;

    public PacketBuffer Frame;

    public readonly bool IsReorderHold => ReleaseAtPass != NotByPasses;
}

/// <summary>
/// Held frames as a binary min-heap on (<see cref="HeldFrame.ReleaseAt"/>, <see cref="HeldFrame.Order"/>)
/// in one growable array: delays differ, so frames are not due in the order they came, and the
/// heap keeps the next one at the top for the stage's single timer. It grows to the most frames
/// ever held at once and then allocates nothing.
/// </summary>
internal sealed class HeldFrameQueue
{
    private HeldFrame[] _heap = new HeldFrame[16];

    public int Count { get; private set; }

    /// <summary>The earliest deadline; only valid while <see cref="Count"/> is above 0.</summary>
    public Instant NextReleaseAt => _heap[0].ReleaseAt;

    public void Push(in HeldFrame held)
    {
        if (Count == _heap.Length) Array.Resize(ref _heap, _heap.Length * 2);
        _heap[Count] = held;
        MoveUp(Count++);
    }

    /// <summary>Takes the earliest frame if it is due by <paramref name="now"/>.</summary>
    public bool TryPopDue(Instant now, out HeldFrame due)
    {
        if (Count == 0 || _heap[0].ReleaseAt > now)
        {
            due = default;
            return false;
        }
        due = _heap[0];
        _heap[0] = _heap[--Count];
        _heap[Count] = default; // let go of the buffer reference
        if (Count > 0) MoveDown(0);
        return true;
    }

    /// <summary>
    /// Makes every reorder hold of <paramref name="direction"/> whose pass count is reached due at
    /// <paramref name="now"/>, so the next <see cref="TryPopDue"/> calls hand them out.
    /// </summary>
    public void ExpeditePassed(FaultDirection direction, long passes, Instant now)
    {
        for (int i = 0; i < Count; i++)
        {
            ref HeldFrame held = ref _heap[i];
            if (held.Direction != direction || held.ReleaseAtPass > passes || held.ReleaseAt <= now) continue;
            held.ReleaseAt = now;
            // Moving up only swaps with entries before i, which the scan has already seen.
            MoveUp(i);
        }
    }

    private void MoveUp(int index)
    {
        HeldFrame item = _heap[index];
        while (index > 0)
        {
            int parent = (index - 1) / 2;
            if (!Earlier(item, _heap[parent])) break;
            _heap[index] = _heap[parent];
            index = parent;
        }
        _heap[index] = item;
    }

    private void MoveDown(int index)
    {
        HeldFrame item = _heap[index];
        while (true)
        {
            int child = 2 * index + 1;
            if (child >= Count) break;
            if (child + 1 < Count && Earlier(_heap[child + 1], _heap[child])) child++;
            if (!Earlier(_heap[child], item)) break;
            _heap[index] = _heap[child];
            index = child;
        }
        _heap[index] = item;
    }

    private static bool Earlier(in HeldFrame a, in HeldFrame b) =>
        a.ReleaseAt < b.ReleaseAt || (a.ReleaseAt == b.ReleaseAt && a.Order < b.Order);
}
