namespace TcpLab.Stack.Buffers;

/// <summary>
/// A free list of equally sized <see cref="PacketBuffer"/>s. One pool serves one event loop,
/// so it takes no locks; in steady state renting and returning allocate nothing.
/// </summary>
public sealed class PacketBufferPool
{
    private readonly Stack<PacketBuffer> _free;
    private readonly int _maxFree;

    /// <param name="bufferSize">Capacity of each buffer, headroom included.</param>
    /// <param name="maxFree">Buffers kept for reuse; returns beyond this go to the GC.</param>
    public PacketBufferPool(int bufferSize, int maxFree = 4096)
    {
        if (bufferSize <= PacketBuffer.DefaultHeadroom) throw new ArgumentOutOfRangeException(nameof(bufferSize));
        BufferSize = bufferSize;
        _maxFree = maxFree;
        _free = new Stack<PacketBuffer>(Math.Min(maxFree, 256));
    }

    /// <summary>A pool whose buffers hold an Ethernet frame of the given MTU after the default headroom.</summary>
    public static PacketBufferPool ForMtu(int mtu) => new(PacketBuffer.DefaultHeadroom + 14 + mtu + 4);

    public int BufferSize { get; }

    /// <summary>A one-off buffer outside any pool, for the rare frame bigger than a pool's (Release is a no-op).</summary>
    public static PacketBuffer Unpooled(int capacity) => new(capacity, null);

    /// <summary>Buffers created so far (a steady value means nothing leaks).</summary>
    public long Allocated { get; private set; }

    public int Available => _free.Count;

    public PacketBuffer Rent()
    {
        if (_free.TryPop(out PacketBuffer? buffer))
        {
            buffer.InPool = false;
            buffer.Reset();
            return buffer;
        }
        Allocated++;
        return new PacketBuffer(BufferSize, this);
    }

    internal void Return(PacketBuffer buffer)
    {
        // A second release would hand one array to two owners: fail loudly instead.
        if (buffer.InPool) throw new InvalidOperationException("PacketBuffer released twice");
        buffer.InPool = true;
        if (_free.Count < _maxFree) _free.Push(buffer);
    }
}
