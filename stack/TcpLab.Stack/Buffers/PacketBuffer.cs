using System.Diagnostics;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Buffers;

/// <summary>
/// One frame in flight, in a pooled array with headroom in front (Linux's skb_reserve): a
/// layer builds its header by <see cref="Prepend"/>ing in place, so TCP writes its segment once
/// and IPv4, Ethernet and, when the link asks for it, a virtio-net header go in front of it
/// without a copy.
/// <para>
/// Ownership moves with the buffer: <c>ILink.Transmit</c> and <c>IFrameHandler.OnFrame</c>
/// both take it, and whoever holds it last calls <see cref="Release"/>. The pool is owned by
/// one event loop, so a buffer never crosses threads.
/// </para>
/// </summary>
public sealed class PacketBuffer
{
    /// <summary>
    /// Room for a virtio_net_hdr_v1 (12), Ethernet (14), IPv4 with options (60) and TCP with
    /// options (60), rounded up to a cache line.
    /// </summary>
    public const int DefaultHeadroom = 192;

    private readonly byte[] _array;
    private readonly PacketBufferPool? _pool;

    /// <summary>True while the buffer sits in its pool's free list.</summary>
    internal bool InPool;

    internal PacketBuffer(int capacity, PacketBufferPool? pool)
    {
        _array = GC.AllocateUninitializedArray<byte>(capacity, pinned: true);
        _pool = pool;
        Reset(DefaultHeadroom);
    }

    /// <summary>Offset of the first byte of the frame in <see cref="Array"/>.</summary>
    public int Offset { get; private set; }
    public int Length { get; private set; }
    public int Capacity => _array.Length;
    public int Headroom => Offset;
    public int Tailroom => _array.Length - Offset - Length;

    /// <summary>The pinned backing array (safe to hand to read/write syscalls).</summary>
    public byte[] Array => _array;

    public Span<byte> Span => _array.AsSpan(Offset, Length);
    public Memory<byte> Memory => _array.AsMemory(Offset, Length);

    /// <summary>When the frame was received, or when the stack emitted it.</summary>
    public Instant Timestamp;

    /// <summary>Checksum and segmentation offload state, as carried by a virtio_net_hdr.</summary>
    public OffloadInfo Offload;

    /// <summary>Why the stack sent this frame (the lab prints it beside the packet).</summary>
    public PacketCause Cause;

    /// <summary>Grows the frame at the front by <paramref name="count"/> bytes and returns them.</summary>
    public Span<byte> Prepend(int count)
    {
        if (count > Offset) throw new InvalidOperationException($"headroom {Offset} < {count}");
        Offset -= count;
        Length += count;
        return _array.AsSpan(Offset, count);
    }

    /// <summary>Drops <paramref name="count"/> bytes from the front (a header that was consumed).</summary>
    public void TrimFront(int count)
    {
        Debug.Assert(count <= Length);
        Offset += count;
        Length -= count;
    }

    /// <summary>Grows the frame at the end by <paramref name="count"/> bytes and returns them.</summary>
    public Span<byte> Append(int count)
    {
        if (count > Tailroom) throw new InvalidOperationException($"tailroom {Tailroom} < {count}");
        Span<byte> tail = _array.AsSpan(Offset + Length, count);
        Length += count;
        return tail;
    }

    /// <summary>Sets the frame to <paramref name="length"/> bytes (e.g. after a read filled the buffer).</summary>
    public void SetLength(int length)
    {
        if (length < 0 || length > _array.Length - Offset) throw new ArgumentOutOfRangeException(nameof(length));
        Length = length;
    }

    /// <summary>Empties the buffer, leaving <paramref name="headroom"/> bytes in front.</summary>
    public void Reset(int headroom = DefaultHeadroom)
    {
        Offset = Math.Min(headroom, _array.Length);
        Length = 0;
        Timestamp = default;
        Offload = default;
        Cause = default;
    }

    /// <summary>Copies the frame and its metadata into a fresh buffer from the same pool.</summary>
    public PacketBuffer Clone()
    {
        PacketBuffer copy = _pool is null ? new PacketBuffer(_array.Length, null) : _pool.Rent();
        copy.Reset(Offset);
        Span.CopyTo(copy.Append(Length));
        copy.Timestamp = Timestamp;
        copy.Offload = Offload;
        copy.Cause = Cause;
        return copy;
    }

    /// <summary>Returns the buffer to its pool; the caller must not touch it afterwards.</summary>
    public void Release() => _pool?.Return(this);
}

/// <summary>
/// Checksum and GSO metadata in the shape of struct virtio_net_hdr, so that a link opened with
/// IFF_VNET_HDR can hand partial checksums and TSO superframes to the kernel (and take GRO
/// superframes from it) without the stack changing shape.
/// </summary>
public struct OffloadInfo
{
    /// <summary>The L4 checksum is not filled in; the link must finish it (VIRTIO_NET_HDR_F_NEEDS_CSUM).</summary>
    public bool NeedsChecksum;

    /// <summary>Received with a checksum the kernel already verified (VIRTIO_NET_HDR_F_DATA_VALID).</summary>
    public bool ChecksumVerified;

    /// <summary>Offset from the frame start where checksumming starts (csum_start).</summary>
    public ushort ChecksumStart;

    /// <summary>Offset of the checksum field from <see cref="ChecksumStart"/> (csum_offset).</summary>
    public ushort ChecksumOffset;

    public GsoKind Gso;

    /// <summary>Payload bytes per segment when the link splits a superframe (gso_size).</summary>
    public ushort GsoSize;

    /// <summary>Ethernet + IP + TCP header bytes of a superframe (hdr_len).</summary>
    public ushort HeaderLength;
}

public enum GsoKind : byte
{
    None = 0,    // VIRTIO_NET_HDR_GSO_NONE
    TcpV4 = 1,   // VIRTIO_NET_HDR_GSO_TCPV4
}
