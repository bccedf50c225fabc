using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// Buffer sizing and autotuning, after the "Buffer size and advertised window tuning" part of
/// net/ipv4/tcp_input.c: sk_sndbuf grown with the congestion window (tcp_sndbuf_expand),
/// rcv_ssthresh grown as data arrives (tcp_grow_window), sk_rcvbuf grown to what the
/// application reads per RTT (tcp_rcv_space_adjust, Dynamic Right-Sizing), and what happens
/// when received data outgrows sk_rcvbuf (tcp_prune_queue).
/// </summary>
public sealed partial class TcpConnection
{
    /// <summary>tp->rcvq_space: bytes the application read in the last measured RTT, and since when.</summary>
    private (int Space, SeqNum Seq, Instant Time) _rcvqSpace;

    /// <summary>tp->rcv_rtt_est: the receiver's RTT estimate in µs &lt;&lt; 3, and the measurement under way.</summary>
    private (long RttUs8, SeqNum Seq, Instant? Time) _rcvRtt;
    private uint _rcvRttLastTsEcr;

    /// <summary>SOCK_NOSPACE: the application found the send buffer full and waits for room.</summary>
    private bool _sendBufferFull;

    /// <summary>sk_rcvbuf now (it grows with autotuning).</summary>
    public int ReceiveBufferSize => _rcvbuf;

    /// <summary>sk_sndbuf now (it grows with the congestion window).</summary>
    public int SendBufferSize => _sendBuffer.Limit;

    /// <summary>tp->window_clamp: the largest window this connection will offer.</summary>
    public int WindowClamp => _windowClamp;

    /// <summary>tp->rcv_ssthresh: the current cap on the offered window, growing as data arrives.</summary>
    public int ReceiveSlowStartThreshold => _rcvSsthresh;

    /// <summary>tp->scaling_ratio in 1/256: the share of receive memory offered as window.</summary>
    public int ScalingRatio => _scalingRatio;

    /// <summary>The receiver's RTT estimate (tp->rcv_rtt_est), null until measured; `ss -i` shows it as rcv_rtt.</summary>
    public TimeSpan? ReceiverRtt => _rcvRtt.RttUs8 == 0 ? null : TimeSpan.FromTicks(_rcvRtt.RttUs8 * 10 / 8);

    /// <summary>copied_seq: the next byte the application will read.</summary>
    private SeqNum CopiedSeq => RcvNxt - _receiveBuffer.Readable - (_finReceived ? 1 : 0);

    // ----- At establishment (tcp_init_buffer_space) -----

    /// <summary>
    /// tcp_init_buffer_space: grow sk_sndbuf for the initial window, start the receive-space
    /// measurement, and clamp the window to the buffer, keeping one segment for the application
    /// (tcp_app_win).
    /// </summary>
    private void InitBufferSpace()
    {
        if (!SendBufferLocked) ExpandSendBuffer();
        _rcvqSpace.Time = Now;
        _rcvqSpace.Seq = CopiedSeq;

        int appWin = Sysctls.TcpAppWin;
        int maxWindow = FullSpace;
        if (_windowClamp >= maxWindow)
        {
            _windowClamp = maxWindow;
            if (appWin != 0 && maxWindow > 4 * _advMss)
                _windowClamp = Math.Max(maxWindow - (maxWindow >> appWin), 4 * _advMss);
        }
        // Force reservation of one segment.
        if (appWin != 0 && _windowClamp > 2 * _advMss && _windowClamp + _advMss > maxWindow)
            _windowClamp = Math.Max(2 * _advMss, maxWindow - _advMss);
        _rcvSsthresh = Math.Min(_rcvSsthresh, _windowClamp);
        _rcvqSpace.Space = Math.Min(Math.Min(_rcvSsthresh, RcvWnd), InitialCwnd * _advMss);
    }

    // ----- Send buffer (tcp_sndbuf_expand, tcp_new_space) -----

    /// <summary>MAX_TCP_HEADER, skb_shared_info and sk_buff as tcp_sndbuf_expand counts them per segment.</summary>
    private const int SendOverheadPerSegment = 320 + 320;
    private const int SkBuffSize = 256;

    /// <summary>
    /// tcp_sndbuf_expand: room for two congestion windows (RFC 5681 fast recovery, and an
    /// application slow to refill) of worst-case skbs: each MSS in a power-of-two kmalloc area.
    /// </summary>
    private void ExpandSendBuffer()
    {
        int perMss = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(Math.Max(_peerMss, _mssCache) + SendOverheadPerSegment)) + SkBuffSize;
        int segments = Math.Max(InitialCwnd, _window.Cwnd);
        segments = Math.Max(segments, ReorderingForSendBuffer + 1);
        long sendMemory = 2L * segments * perMss;
        if (_sendBuffer.Limit < sendMemory) _sendBuffer.Limit = (int)Math.Min(sendMemory, Sysctls.TcpWmem[2]);
    }

    /// <summary>tp->reordering as tcp_sndbuf_expand reads it (net.ipv4.tcp_reordering, 3, until loss recovery measures more).</summary>
    private static int ReorderingForSendBuffer => 3;

    /// <summary>
    /// tcp_check_space + tcp_new_space, after ACKs freed room: if the application is waiting,
    /// grow sk_sndbuf while the congestion window is not full (tcp_should_expand_sndbuf), and
    /// wake it once the free room is at least half of what is queued (sk_stream_write_space).
    /// </summary>
    private void CheckSendSpace()
    {
        if (!_sendBufferFull || _sendShutdown) return;
        if (!SendBufferLocked && InFlight < _window.Cwnd) ExpandSendBuffer();
        if (_sendBuffer.Free >= _sendBuffer.Count >> 1)   // __sk_stream_is_writeable
        {
            _sendBufferFull = false;
            Observer?.OnWritable(this);
        }
    }

    // ----- Receive window growth (tcp_grow_window) -----

    /// <summary>The memory a received segment costs: the truesize of its frame(s) behind a TAP.</summary>
    private static int SegmentTruesize(in Segment segment)
    {
        const int frameHeaders = 14 + 20;   // Ethernet and IPv4 without options
        int payload = segment.Length;
        int gso = segment.GsoSize;
        if (gso == 0 || payload <= gso) return ReceiveMemory.FrameTruesize(frameHeaders + segment.Header.Length + payload);
        // A GRO superframe: as many wire frames as it carries segments.
        int full = payload / gso, last = payload % gso;
        int truesize = full * ReceiveMemory.FrameTruesize(frameHeaders + segment.Header.Length + gso);
        return last == 0 ? truesize : truesize + ReceiveMemory.FrameTruesize(frameHeaders + segment.Header.Length + last);
    }

    /// <summary>
    /// tcp_grow_window: let rcv_ssthresh (the cap on our offered window) grow as data arrives,
    /// by two segments (or twice this one) when segments of this truesize will fit the buffer.
    /// </summary>
    private void GrowWindow(int length, int truesize)
    {
        int room = Math.Min(_windowClamp, FreeSpace) - _rcvSsthresh;
        if (room <= 0) return;
        int increment = ReceiveMemory.WindowFromSpace(_scalingRatio, truesize) <= length ? 2 * _advMss : GrowWindowSlowly(length, truesize);
        if (increment == 0) return;
        increment = Math.Max(increment, 2 * length);
        _rcvSsthresh += Math.Min(room, increment);
        _ackState.Quick |= 1;
    }

    /// <summary>__tcp_grow_window: a segment with a poor payload/truesize ratio grows the window only while it is small.</summary>
    private int GrowWindowSlowly(int length, int truesize)
    {
        int share = ReceiveMemory.WindowFromSpace(_scalingRatio, truesize) >> 1;
        int window = ReceiveMemory.WindowFromSpace(_scalingRatio, Sysctls.TcpRmem[2]) >> 1;
        while (_rcvSsthresh <= window)
        {
            if (share <= length) return 2 * _ackState.RcvMss;
            share >>= 1;
            window >>= 1;
        }
        return 0;
    }

    /// <summary>
    /// The scaling_ratio part of tcp_measure_rcv_mss: a full-sized segment of a new size tells
    /// how payload relates to truesize; the window clamp follows the new ratio.
    /// </summary>
    private void MeasureScalingRatio(int length, int truesize)
    {
        int ratio = ReceiveMemory.MeasureRatio(length, truesize);
        if (ratio == _scalingRatio) return;
        _scalingRatio = ratio;
        _windowClamp = FullSpace;
        if (_windowClamp < _rcvqSpace.Space) _rcvqSpace.Space = _windowClamp;
    }

    // ----- Receiver RTT and buffer autotuning (tcp_rcv_rtt_*, tcp_rcv_space_adjust) -----

    /// <summary>tcp_rcv_rtt_update: keep the minimum from window-based samples, smooth timestamp samples by 1/8.</summary>
    private void UpdateReceiverRtt(long sampleUs, bool windowBased)
    {
        long old = _rcvRtt.RttUs8, m = sampleUs << 3;
        if (old == 0 || m < old) _rcvRtt.RttUs8 = m;
        else if (!windowBased) _rcvRtt.RttUs8 = old - (old >> 3) + sampleUs;
    }

    /// <summary>
    /// tcp_rcv_rtt_measure (DRS without timestamps): the time for the sender to fill one
    /// advertised window is at least an RTT.
    /// </summary>
    private void MeasureReceiverRttByWindow()
    {
        if (_rcvRtt.Time is { } started)
        {
            if (RcvNxt < _rcvRtt.Seq) return;
            long deltaUs = Math.Max(1, (Now - started).Ticks / 10);
            UpdateReceiverRtt(deltaUs, windowBased: true);
        }
        _rcvRtt.Seq = RcvNxt + RcvWnd;
        _rcvRtt.Time = Now;
    }

    /// <summary>tcp_rcv_rtt_measure_ts: an RTT sample from the echoed timestamp of a full-sized segment.</summary>
    private void MeasureReceiverRttByTimestamp(in Segment segment)
    {
        if (!_sawTimestamp || _rcvTsEcr == _rcvRttLastTsEcr) return;
        _rcvRttLastTsEcr = _rcvTsEcr;
        if (segment.EndSeq - segment.Seq < _ackState.RcvMss) return;
        uint deltaMs = unchecked(_tcp.TimestampClock + TsOffset - _rcvTsEcr);
        if (deltaMs != 0 && deltaMs < int.MaxValue / 1000) UpdateReceiverRtt(deltaMs * 1000L, windowBased: false);
    }

    /// <summary>
    /// tcp_rcv_space_adjust, after every read: once per receiver RTT, if the application read more
    /// than in the RTT before, size sk_rcvbuf for twice that (loss), plus the growth seen (the
    /// sender's slow start), plus 16 segments, up to tcp_rmem[2]; the window clamp follows.
    /// </summary>
    private void AdjustReceiveSpace()
    {
        long elapsedUs = (Now - _rcvqSpace.Time).Ticks / 10;
        if (_rcvRtt.RttUs8 == 0 || elapsedUs < _rcvRtt.RttUs8 >> 3) return;
        SeqNum copiedSeq = CopiedSeq;
        int copied = copiedSeq - _rcvqSpace.Seq - _receiveBuffer.Readable;
        if (copied > _rcvqSpace.Space)
        {
            if (Sysctls.TcpModerateRcvbuf != 0 && !ReceiveBufferLocked)
            {
                long window = 2L * copied + 16L * _advMss;
                long grow = window * (copied - _rcvqSpace.Space) / _rcvqSpace.Space;
                window += grow << 1;
                int rcvbuf = (int)Math.Min(ReceiveMemory.SpaceFromWindow(_scalingRatio, window), Sysctls.TcpRmem[2]);
                if (rcvbuf > _rcvbuf)
                {
                    GrowReceiveBuffer(rcvbuf);
                    _windowClamp = FullSpace;   // the clamp follows along
                }
            }
            _rcvqSpace.Space = copied;
        }
        _rcvqSpace.Seq = copiedSeq;
        _rcvqSpace.Time = Now;
    }

    /// <summary>A larger sk_rcvbuf; the ring grows (by at least doubling) to hold it.</summary>
    private void GrowReceiveBuffer(int rcvbuf)
    {
        _rcvbuf = rcvbuf;
        if (_receiveBuffer.Capacity < RingFor(rcvbuf)) _receiveBuffer.Grow(Math.Max(RingFor(rcvbuf), 2 * _receiveBuffer.Capacity));
    }

    // ----- Over the limit (tcp_try_rmem_schedule, tcp_prune_queue) -----

    /// <summary>
    /// tcp_try_rmem_schedule: data is taken while sk_rmem_alloc is within sk_rcvbuf; beyond it,
    /// tcp_prune_queue first tries to grow the buffer (tcp_clamp_window), then to make the queued
    /// data cheaper (tcp_collapse), then drops out-of-order data. False: drop the segment.
    /// </summary>
    private bool ReceiveMemoryAvailable()
    {
        if (_receiveBuffer.Memory <= _rcvbuf) return true;
        Counters.Increment(Mib.TcpExtPruneCalled);
        ClampWindow();
        if (_receiveBuffer.Memory <= _rcvbuf) return true;
        if (_receiveBuffer.Readable > 0)
        {
            _receiveBuffer.CollapseInOrder();
            Counters.Increment(Mib.TcpExtTCPRcvCollapsed);
            if (_receiveBuffer.Memory <= _rcvbuf) return true;
        }
        if (_receiveBuffer.OutOfOrderBytes > 0)
        {
            // tcp_prune_ofo_queue drops from the highest sequence down; the lab drops it all.
            Counters.Increment(Mib.TcpExtOfoPruned);
            _receiveBuffer.PurgeOutOfOrder();
            _sackBlocks.Clear();   // tcp_sack_reset: the SACKed data is gone (the sender will see reneging)
            if (_receiveBuffer.Memory <= _rcvbuf) return true;
        }
        Counters.Increment(Mib.TcpExtRcvPruned);
        return false;
    }

    /// <summary>tcp_clamp_window: the buffer hit its limit; grow it to what is held (up to tcp_rmem[2]) or shrink rcv_ssthresh.</summary>
    private void ClampWindow()
    {
        _ackState.Quick = 0;
        int rmem2 = Sysctls.TcpRmem[2];
        // (Linux also requires no global TCP memory pressure, which the lab does not model.)
        if (_rcvbuf < rmem2 && !ReceiveBufferLocked)
            GrowReceiveBuffer((int)Math.Max(_rcvbuf, Math.Min(_receiveBuffer.Memory, rmem2)));
        if (_receiveBuffer.Memory > _rcvbuf) _rcvSsthresh = Math.Min(_windowClamp, 2 * _advMss);
    }
}
