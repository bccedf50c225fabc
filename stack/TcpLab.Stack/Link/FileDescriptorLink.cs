using System.Diagnostics;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link;

/// <summary>
/// The engine shared by links whose descriptor carries exactly one Ethernet frame per read and
/// per write (<see cref="TapDevice"/>, <see cref="PacketSocketLink"/>): it reads frames in
/// batches when the loop finds the descriptor readable, writes transmitted frames, and counts
/// both. Steady state allocates nothing per frame: buffers come from the pool and go back to it.
/// <para>
/// Nothing here throws on a bad frame or a transient error; those are counted, and the errno of
/// the last error is kept. Reading starts with the first <see cref="Attach"/>, so frames that
/// arrive earlier wait in the kernel's queue rather than being lost.
/// </para>
/// </summary>
public abstract unsafe class FileDescriptorLink : ILink, IDisposable
{
    /// <summary>
    /// Frames read per turn of the loop (NAPI's budget). Then the loop gets to run timers and
    /// posted work before reading on; a descriptor left with frames queued is polled rather than
    /// watched through epoll until it reads empty (<see cref="RealTimeEventLoop.RegisterDrainable"/>).
    /// </summary>
    public const int MaxFramesPerWakeup = 64;

    /// <summary>Destination, source and one 802.1Q tag: the most header in front of an MTU-sized payload.</summary>
    private protected const int EthernetHeaderWithVlanTag = 18;

    private readonly RealTimeEventLoop _loop;
    private readonly PacketBufferPool _pool;
    private readonly FileDescriptor _fd;
    private readonly Func<bool> _onReadable;
    private IFrameHandler? _handler;
    private bool _receiving;
    private int _disposed;

    private protected FileDescriptorLink(RealTimeEventLoop loop, PacketBufferPool pool, FileDescriptor fd, LinkInfo info)
    {
        _loop = loop;
        _pool = pool;
        _fd = fd;
        Info = info;
        _onReadable = OnReadable;
    }

    public LinkInfo Info { get; }

    public long FramesIn { get; private set; }
    /// <summary>Ethernet bytes received (link headers such as the virtio-net header excluded).</summary>
    public long BytesIn { get; private set; }
    public long FramesOut { get; private set; }
    /// <summary>Ethernet bytes sent (link headers excluded).</summary>
    public long BytesOut { get; private set; }

    /// <summary>Frames the kernel had no room for (EAGAIN, ENOBUFS): congestion, not a fault.</summary>
    public long TxDrops { get; private set; }
    /// <summary>Frames the kernel refused for any other reason; see <see cref="LastTxError"/>.</summary>
    public long TxErrors { get; private set; }
    public Errno LastTxError { get; private set; }

    /// <summary>Failed reads and frames dropped as unusable (truncated, bad link header).</summary>
    public long RxErrors { get; private set; }
    /// <summary>Frames longer than a pool buffer (part of <see cref="RxErrors"/>): the MTU grew after the link opened.</summary>
    public long RxTruncated { get; private set; }
    public Errno LastRxError { get; private set; }

    /// <summary>True while frames are being read: after <see cref="Attach"/>, until a fatal read error or <see cref="Dispose"/>.</summary>
    public bool IsReceiving => _receiving;

    /// <summary>Sets the handler and, the first time, starts reading.</summary>
    public void Attach(IFrameHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        _loop.Invoke(() =>
        {
            bool first = _handler is null;
            _handler = handler;
            if (first)
            {
                _receiving = true;
                _loop.RegisterDrainable(_fd, _onReadable);
            }
        });
    }

    /// <summary>Writes one frame and releases it. Must be called on the loop thread.</summary>
    public void Transmit(PacketBuffer frame)
    {
        Debug.Assert(!_loop.IsRunning || _loop.IsOnLoop, "a link is used from its loop's thread");
        if (_disposed != 0)
        {
            CountTransmitError(Errno.EBADF);
        }
        else if (!TryAddLinkHeader(frame, out int headerLength))
        {
            // The frame's owner left no headroom for the link header: what tun_get_user says
            // about a frame it cannot use.
            CountTransmitError(Errno.EINVAL);
        }
        else
        {
            nint written;
            fixed (byte* start = frame.Span)
                written = LibC.Write(_fd, start, (nuint)frame.Length);
            if (written >= 0)
            {
                FramesOut++;
                BytesOut += frame.Length - headerLength;
            }
            else
            {
                CountTransmitError(SystemError.Last);
            }
        }
        frame.Release();
    }

    /// <summary>Stops reading and closes the descriptor (for a TAP, that deletes the device). Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // On the loop, so no readiness callback is half-way through a read of this descriptor.
        _loop.Invoke(() =>
        {
            StopReceiving();
            _fd.Dispose();
        });
    }

    public override string ToString() => Info.Name;

    /// <summary>
    /// Reads one frame into <paramref name="buffer"/>. Returns the frame's full length, which is
    /// greater than <paramref name="capacity"/> when the frame was cut short, or -1 with errno set.
    /// </summary>
    private protected abstract nint Receive(FileDescriptor fd, byte* buffer, int capacity);

    /// <summary>Removes (and decodes) what the descriptor puts in front of the Ethernet header. False: unusable frame.</summary>
    private protected virtual bool TryRemoveLinkHeader(PacketBuffer frame) => true;

    /// <summary>Prepends what the descriptor expects in front of the Ethernet header. False: no headroom for it.</summary>
    private protected virtual bool TryAddLinkHeader(PacketBuffer frame, out int headerLength)
    {
        headerLength = 0;
        return true;
    }

    /// <summary>Fails early, before any frame is cut short, when the pool's buffers are too small.</summary>
    private protected static void EnsureBuffersFit(PacketBufferPool pool, int requiredBufferSize, string why)
    {
        if (pool.BufferSize < requiredBufferSize)
            throw new ArgumentException(
                $"pool buffers hold {pool.BufferSize} bytes but {why} needs {requiredBufferSize} " +
                $"(new PacketBufferPool({requiredBufferSize}))", nameof(pool));
    }

    /// <summary>Reads up to a batch of frames; true when the descriptor read empty (or reading stopped).</summary>
    private bool OnReadable()
    {
        for (int i = 0; i < MaxFramesPerWakeup && _receiving; i++)
        {
            PacketBuffer frame = _pool.Rent();
            int capacity = frame.Tailroom;
            nint length;
            fixed (byte* start = &frame.Array[frame.Offset])
                length = Receive(_fd, start, capacity);

            if (length < 0)
            {
                Errno errno = SystemError.Last;
                frame.Release();
                if (errno == Errno.EINTR) continue;
                if (errno != Errno.EAGAIN) CountReceiveError(errno);
                return true; // queue empty, or an error that a later wake-up may not repeat
            }
            if (length > capacity)
            {
                RxTruncated++;
                RxErrors++;
                frame.Release();
                continue;
            }
            frame.SetLength((int)length);
            if (!TryRemoveLinkHeader(frame))
            {
                RxErrors++;
                frame.Release();
                continue;
            }
            frame.Timestamp = _loop.RefreshNow();   // the time of everything this frame causes
            FramesIn++;
            BytesIn += frame.Length;
            _handler!.OnFrame(frame); // ownership moves to the handler
        }
        return !_receiving; // budget spent: frames may be waiting
    }

    private void CountReceiveError(Errno errno)
    {
        RxErrors++;
        LastRxError = errno;
        // ENETDOWN: the interface went down (a packet socket reports it once, net/packet/af_packet.c
        // packet_notifier). ENOBUFS/ENOMEM: memory pressure. Anything else (EBADFD from a TAP whose
        // device was deleted, for one) repeats forever; level-triggered epoll would then spin the
        // loop, so stop reading and leave the state visible in IsReceiving and LastRxError.
        if (errno is not (Errno.ENETDOWN or Errno.ENOBUFS or Errno.ENOMEM)) StopReceiving();
    }

    private void CountTransmitError(Errno errno)
    {
        if (errno is Errno.EAGAIN or Errno.ENOBUFS)
        {
            TxDrops++;
            return;
        }
        TxErrors++;
        LastTxError = errno;
    }

    private void StopReceiving()
    {
        if (!_receiving) return;
        _receiving = false;
        _loop.UnregisterReadable(_fd);
    }
}
