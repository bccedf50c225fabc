using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>Sending: segmentation, the send tests of tcp_write_xmit, window selection, ACKs, FIN, RST and probes.</summary>
public sealed partial class TcpConnection
{
    private readonly SentSegments _sent = new();
    private readonly Queue<SeqNum> _pushPoints = new();
    /// <summary>End of the last sub-MSS segment sent (snd_sml), for Minshall's Nagle variant.</summary>
    private SeqNum _lastSmallSegmentEnd;

    /// <summary>End of the data the application queued, excluding a queued FIN.</summary>
    private SeqNum DataEnd => _finQueued ? WriteSeq - 1 : WriteSeq;

    /// <summary>The right edge of the peer's window (tcp_wnd_end).</summary>
    private SeqNum WindowEnd => SndUna + SndWnd;

    /// <summary>The MSS for new segments: peer's MSS and path MTU, less our option overhead.</summary>
    public int SendMss => _mssCache;

    /// <summary>
    /// tcp_current_mss: the MSS less the SACK blocks this segment will carry, so that a data
    /// segment with SACK blocks still fits the MTU.
    /// </summary>
    private int CurrentMss
    {
        get
        {
            int sacks = _sackBlocks.Count + (_sackBlocks.Duplicate is null ? 0 : 1);   // eff_sacks: num_sacks + dsack
            int blocks = SackOk ? Math.Min(sacks, TimestampsOk ? 3 : TcpOptions.MaxSackBlocks) : 0;
            return blocks == 0 ? _mssCache : _mssCache - (4 + 8 * blocks);   // TCPOLEN_SACK_BASE_ALIGNED + blocks
        }
    }

    // ----- tcp_write_xmit -----

    /// <summary>tcp_push_pending_frames: send what the windows allow; arm the persist timer if blocked by a zero window.</summary>
    private void PushPendingFrames(bool nagle)
    {
        if (_state is TcpState.SynSent or TcpState.Closed || (_state is TcpState.SynReceived && _fastOpenRequest is null)) return;
        bool blocked = WriteXmit(nagle);
        if (blocked && PacketsOut == 0 && _pendingTimer == PendingTimer.None)
            ArmPersistTimer();   // tcp_check_probe_timer
    }

    /// <summary>
    /// tcp_write_xmit: sends new segments while the congestion window, the peer's window and
    /// Nagle allow, then validates cwnd and schedules a tail loss probe. Returns true when
    /// nothing is in flight and data (or a FIN) is waiting but could not be sent.
    /// </summary>
    private bool WriteXmit(bool nagle, CauseCode dataCause = CauseCode.TcpData)
    {
        int mss = CurrentMss;
        int superframeLimit = _tcp.SuperframePayloadLimit(Tuple.RemoteAddress);
        int sent = 0;
        bool cwndLimited = false;
        while (true)
        {
            int available = DataEnd - SndNxt;
            bool finPending = _finQueued && SndNxt < WriteSeq && available <= 0;
            if (available <= 0 && !finPending) break;
            int length = Math.Min(available, mss);
            bool withFin = _finQueued && SndNxt + length == DataEnd;

            // tcp_cwnd_test
            if (InFlight >= _window.Cwnd)
            {
                cwndLimited = true;
                break;
            }
            // tcp_snd_wnd_test: the segment (FIN included) must fit the peer's window.
            if (SndNxt + length + (withFin ? 1 : 0) > WindowEnd) break;
            // tcp_nagle_test on the last segment: hold a small one while a small one is unacknowledged.
            if (nagle && length < mss && !withFin && PacketsOut > 0
                && _lastSmallSegmentEnd > SndUna && _lastSmallSegmentEnd <= SndNxt)
                break;

            TransmitNewSegment(length, withFin, new PacketCause(length == 0 ? CauseCode.TcpFin : dataCause, length), mss, superframeLimit);
            sent++;
        }
        FlushSuperframe();
        cwndLimited |= InFlight >= _window.Cwnd;
        if (sent > 0 || cwndLimited) CwndValidate(cwndLimited);
        if (sent > 0)
        {
            if (InCwndReduction) _prrOut += sent;
            ScheduleLossProbe(advancingRto: false);   // one loss probe per tail loss episode
            return false;
        }
        return PacketsOut == 0 && (DataEnd > SndNxt || (_finQueued && SndNxt < WriteSeq));
    }

    /// <summary>
    /// Sends [snd_nxt, snd_nxt + length) (and FIN) for the first time and records it in flight.
    /// With a <paramref name="superframeLimit"/> (see <see cref="TryAddToSuperframe"/>) the
    /// segment may instead join the pending TSO superframe, which the caller flushes.
    /// </summary>
    private void TransmitNewSegment(int length, bool withFin, PacketCause cause, int mss = 0, int superframeLimit = 0)
    {
        SeqNum start = SndNxt;
        Instant now = Now;
        var segment = new SentSegment
        {
            Start = start,
            End = start + length + (withFin ? 1 : 0),
            Fin = withFin,
            FirstSent = now,
            LastSent = now,
            DeliveredAtSend = _delivered,
        };
        int priorPackets = PacketsOut;
        if (!TryAddToSuperframe(segment, cause, mss, superframeLimit)) TransmitSegment(segment, cause, retransmission: false);
        SndNxt = segment.End;
        _sent.Add(segment);
        if (length > 0)
        {
            Counters.Increment(Mib.TcpExtTCPOrigDataSent);
            if (length < _mssCache) _lastSmallSegmentEnd = segment.End;
        }
        // tcp_event_new_data_sent: the RTO runs from the first segment in flight, or replaces a loss
        // probe (while a Fast Open child's SYN-ACK is unacknowledged the timer is the SYN-ACK's, tcp_rearm_rto).
        if ((priorPackets == 0 || _pendingTimer == PendingTimer.LossProbe) && _fastOpenRequest is null) RearmRto();
    }

    /// <summary>
    /// tcp_transmit_skb for a data/FIN segment (new or retransmitted): payload from the send
    /// buffer, ACK always, PSH when the segment ends an application write.
    /// </summary>
    private void TransmitSegment(in SentSegment segment, PacketCause cause, bool retransmission)
    {
        int length = segment.Length;
        if (_tcp.RentSegmentBuffer(Tuple.RemoteAddress) is not { } buffer) return;
        if (length > 0) _sendBuffer.CopyTo(SendBufferOffset(segment.Start), buffer.Append(length));
        TcpFlags flags = TcpFlags.Ack;
        if (segment.Fin) flags |= TcpFlags.Fin;
        if (length > 0 && EndsAWrite(segment.Start, segment.Start + length)) flags |= TcpFlags.Psh;
        TcpHeader header = BuildHeader(segment.Start, flags, segment.LastSent);
        Send(header, buffer, cause, retransmission, carriesData: length > 0 || segment.Fin);
    }

    /// <summary>Whether an application write ended inside (start, end]: Linux sets PSH on such a segment.</summary>
    private bool EndsAWrite(SeqNum start, SeqNum end)
    {
        while (_pushPoints.TryPeek(out SeqNum point) && point <= SndUna) _pushPoints.Dequeue();
        foreach (SeqNum point in _pushPoints)
        {
            if (point > end) break;
            if (point > start) return true;
        }
        return false;
    }

    /// <summary>Where the byte at <paramref name="seq"/> sits in the send buffer: its data starts after our SYN while that is unacknowledged.</summary>
    private int SendBufferOffset(SeqNum seq) => seq - SndUna - (_state == TcpState.SynSent && SndUna == Iss ? 1 : 0);

    /// <summary>
    /// tcp_syn_options + tcp_connect: SYN with MSS, SACK-permitted, timestamps and window scale as
    /// enabled, and for Fast Open a cookie option (empty: a cookie request) and the first
    /// <paramref name="dataLength"/> bytes of the send buffer.
    /// </summary>
    private void TransmitSyn(PacketCause cause, bool fastOpenOption = false, ReadOnlySpan<byte> cookie = default,
                             bool experimental = false, int dataLength = 0)
    {
        if (_tcp.RentSegmentBuffer(Tuple.RemoteAddress) is not { } buffer) return;
        if (dataLength > 0) _sendBuffer.CopyTo(0, buffer.Append(dataLength));
        var header = new TcpHeader
        {
            SourcePort = Tuple.LocalPort,
            DestinationPort = Tuple.RemotePort,
            SequenceNumber = Iss.Value,
            Flags = TcpFlags.Syn,
            Window = (ushort)Math.Min(RcvWnd, 65535),   // never scaled in a SYN (RFC 7323 2.2)
        };
        header.Options.SetMss((ushort)_advMss);
        if (Sysctls.TcpTimestamps != 0) header.Options.SetTimestamp(_tcp.TimestampClock + TsOffset, 0);
        if (Sysctls.TcpWindowScaling) header.Options.SetWindowScale(ReceiveWindowScale);
        header.Options.SackPermitted = Sysctls.TcpSack;
        if (fastOpenOption) header.Options.SetFastOpenCookie(cookie, experimental ? FastOpenEncoding.Experimental : FastOpenEncoding.Rfc7413);
        Send(header, buffer, cause, retransmission: cause.Code == CauseCode.TcpSynRetransmit, carriesData: true);
    }

    /// <summary>
    /// The header of a segment we send in a synchronized state: ACK of rcv_nxt, our window,
    /// timestamps, SACK blocks. A data segment's TSval comes from <paramref name="sentAt"/>, the
    /// send time recorded for it, so RTT and undo compare the very clock value the peer echoes.
    /// </summary>
    private TcpHeader BuildHeader(SeqNum seq, TcpFlags flags, Instant? sentAt = null)
    {
        var header = new TcpHeader
        {
            SourcePort = Tuple.LocalPort,
            DestinationPort = Tuple.RemotePort,
            SequenceNumber = seq.Value,
            Flags = flags,
        };
        if ((flags & TcpFlags.Ack) != 0) header.AcknowledgmentNumber = RcvNxt.Value;
        header.Window = SelectWindow();
        if (TimestampsOk) header.Options.SetTimestamp((sentAt is { } t ? TcpLayer.TimestampAt(t) : _tcp.TimestampClock) + TsOffset, TsRecent);
        if (SackOk && (flags & TcpFlags.Ack) != 0) _sackBlocks.Write(ref header.Options);   // D-SACK first, then the most recent block
        return header;
    }

    /// <summary>Hands a finished header and payload to the TCP layer, with the accounting tcp_transmit_skb does.</summary>
    private void Send(in TcpHeader header, PacketBuffer buffer, PacketCause cause, bool retransmission, bool carriesData)
    {
        ushort ipId = CountSent(header.Flags, retransmission, carriesData);
        _tcp.Transmit(Tuple, header, buffer, cause, ipId, countAsOutSegment: !retransmission);
    }

    /// <summary>
    /// The per-segment accounting of <see cref="Send"/>, which a segment joining a superframe gets
    /// when it joins. Returns the segment's IP ID (a superframe's segments have consecutive ones,
    /// as inet_gso_segment numbers them).
    /// </summary>
    private ushort CountSent(TcpFlags flags, bool retransmission, bool carriesData)
    {
        if ((flags & TcpFlags.Ack) != 0) AckSent();
        if (carriesData && (flags & TcpFlags.Syn) == 0) DataSent();
        if (retransmission) Counters.Increment(Mib.TcpRetransSegs);
        SegmentsOut++;
        return _ipId++;
    }

    /// <summary>tcp_event_data_sent: remember when we last sent, and count a reply within ato as interactive.</summary>
    private void DataSent()
    {
        if (InFlight == 0) _cc.CwndEvent(this, Congestion.CongestionEvent.TxStart);
        _lastSendTime = Now;
        if (Now - _ackState.LastReceive < _ackState.Ato && _ackState.Pingpong < 255) _ackState.Pingpong++;
    }

    // ----- ACKs -----

    /// <summary>tcp_send_ack: a pure ACK now, at tcp_acceptable_seq.</summary>
    internal void SendAck(PacketCause cause)
    {
        if (_state == TcpState.Closed) return;
        if (_tcp.RentSegmentBuffer(Tuple.RemoteAddress) is not { } buffer) return;
        TcpHeader header = BuildHeader(AcceptableSeq, TcpFlags.Ack);
        Send(header, buffer, cause, retransmission: false, carriesData: false);
    }

    /// <summary>tcp_acceptable_seq: snd_nxt, unless our window knowledge says it is beyond the peer's window.</summary>
    private SeqNum AcceptableSeq =>
        WindowEnd >= SndNxt || (SndNxt - WindowEnd) < (1 << ReceiveWindowScale) ? SndNxt : WindowEnd;

    /// <summary>tcp_send_active_reset: RST|ACK at the acceptable sequence number.</summary>
    private void SendActiveReset(CauseCode cause)
    {
        if (_tcp.RentSegmentBuffer(Tuple.RemoteAddress) is not { } buffer) return;
        TcpHeader header = BuildHeader(AcceptableSeq, TcpFlags.Rst | TcpFlags.Ack);
        Send(header, buffer, new PacketCause(cause), retransmission: false, carriesData: false);
    }

    /// <summary>tcp_send_fin: the FIN takes one sequence number after the data and leaves with Nagle off.</summary>
    private void SendFin()
    {
        if (_finQueued) return;
        _finQueued = true;
        _sendShutdown = true;
        WriteSeq += 1;
        PushPendingFrames(nagle: false);
    }

    /// <summary>
    /// tcp_write_wakeup: a keepalive or window probe. If unsent data fits the window, send (part
    /// of) it; otherwise a bare ACK with seq snd_una - 1, which the peer must answer with an ACK.
    /// Returns false if nothing could be sent.
    /// </summary>
    private bool SendProbe(PacketCause cause)
    {
        if (_state == TcpState.Closed) return false;
        int unsent = DataEnd - SndNxt;
        if (unsent > 0 && SndNxt < WindowEnd)
        {
            int length = Math.Min(Math.Min(unsent, _mssCache), WindowEnd - SndNxt);
            TransmitNewSegment(length, withFin: false, cause);   // the probe carries data
            return true;
        }
        if (_tcp.RentSegmentBuffer(Tuple.RemoteAddress) is not { } buffer) return false;
        TcpHeader header = BuildHeader(SndUna - 1, TcpFlags.Ack);
        Send(header, buffer, cause, retransmission: false, carriesData: false);
        return true;
    }

    // ----- Window selection (tcp_select_window) -----

    /// <summary>tcp_full_space: the window the whole receive buffer allows.</summary>
    private int FullSpace => ReceiveMemory.WindowFromSpace(_scalingRatio, _rcvbuf);

    /// <summary>tcp_space: the window the unused receive memory allows (negative when over the limit).</summary>
    private int FreeSpace => ReceiveMemory.WindowFromSpace(_scalingRatio, (int)Math.Max(int.MinValue / 2, _rcvbuf - _receiveBuffer.Memory));

    /// <summary>
    /// __tcp_select_window: the window to offer now. Never more than rcv_ssthresh (which grows
    /// as data arrives), rounded up to the window-scale granularity, or zero when less than an
    /// MSS (or a sixteenth of the buffer) is free, which is how receivers avoid silly windows.
    /// </summary>
    private int SelectWindowRaw()
    {
        int mss = _ackState.RcvMss;
        int freeSpace = FreeSpace;
        int allowed = FullSpace;
        int full = Math.Min(_windowClamp, allowed);
        if (mss > full)
        {
            mss = full;
            if (mss <= 0) return 0;
        }
        if (freeSpace < full >> 1)
        {
            _ackState.Quick = 0;
            freeSpace &= ~((1 << ReceiveWindowScale) - 1);
            if (freeSpace < allowed >> 4 || freeSpace < mss) return 0;
        }
        if (freeSpace > _rcvSsthresh) freeSpace = _rcvSsthresh;
        if (ReceiveWindowScale != 0)
        {
            int granularity = 1 << ReceiveWindowScale;
            return (freeSpace + granularity - 1) & ~(granularity - 1);
        }
        int window = RcvWnd;
        // Keep the current offer if within one MSS of the free space; else a multiple of the MSS.
        if (window <= freeSpace - mss || window > freeSpace) window = freeSpace - freeSpace % mss;
        else if (mss == full && freeSpace > window + (full >> 1)) window = freeSpace;
        return window;
    }

    /// <summary>tcp_select_window: never shrink an offered window; record what we advertise; scale it.</summary>
    private ushort SelectWindow()
    {
        int current = ReceiveWindowRemaining;
        int next = SelectWindowRaw();
        if (next < current)
        {
            if (next == 0) Counters.Increment(Mib.TcpExtTCPWantZeroWindowAdv);
            int granularity = 1 << ReceiveWindowScale;
            next = (current + granularity - 1) & ~(granularity - 1);
        }
        int previous = RcvWnd;
        RcvWnd = next;
        RcvWup = RcvNxt;
        int field = Math.Min(next, 65535 << ReceiveWindowScale) >> ReceiveWindowScale;
        if (field == 0 && previous != 0) Counters.Increment(Mib.TcpExtTCPToZeroWindowAdv);
        else if (field != 0 && previous == 0) Counters.Increment(Mib.TcpExtTCPFromZeroWindowAdv);
        return (ushort)field;
    }

    // ----- MSS -----

    /// <summary>
    /// tcp_sync_mss: the send MSS from the path MTU and the peer's MSS, less the timestamp option,
    /// bounded by half the largest window the peer offered.
    /// </summary>
    private void SyncMss(int maxWindow)
    {
        int mtuMss = AdvertisedMss(_tcp, Tuple.RemoteAddress, new TcpSocketOptions());
        int mss = Math.Min(mtuMss, _peerMss);
        mss = Math.Max(mss, 48);
        if (TimestampsOk) mss -= TimestampOptionSpace;
        // tcp_bound_to_half_wnd: against a tiny window, segments of half the largest window seen
        // (all of it when that is no more than 536 bytes) keep the sender out of silly windows.
        int cutoff = maxWindow > DefaultPeerMss ? maxWindow >> 1 : maxWindow;
        if (cutoff > 0 && mss > cutoff) mss = Math.Max(cutoff, 68 - (TimestampsOk ? 32 : 20));
        _mssCache = mss;
    }
}
