using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>Receiving: the segment-arrival rules of RFC 9293 3.10.7 as Linux's tcp_input.c implements them.</summary>
public sealed partial class TcpConnection
{
    private Instant _rcvTstamp;          // when an acceptable ACK last arrived (tp->rcv_tstamp)
    private Instant? _lastOutOfWindowAnswer;
    private long _bytesAcked;
    private readonly ReceivedSackBlocks _sackBlocks = new();

    // Per-segment option state (rx_opt.saw_tstamp, rcv_tsval, rcv_tsecr).
    private bool _sawTimestamp;
    private uint _rcvTsVal;
    private uint _rcvTsEcr;

    public long SegmentsIn { get; private set; }
    public long SegmentsOut { get; private set; }
    public long BytesReceived { get; private set; }
    public long BytesAcked => _bytesAcked;

    /// <summary>One segment for this connection (tcp_v4_do_rcv).</summary>
    internal void Receive(in Segment segment)
    {
        SegmentsIn++;
        switch (_state)
        {
            case TcpState.SynSent:
                ReceiveInSynSent(segment);
                break;
            case TcpState.Closed:
                Counters.Drop(DropReason.TcpState);
                break;
            default:
                // A Fast Open child's request screens segments until the handshake completes.
                if (_fastOpenRequest is { } request && !request.Listener.ReceiveForRequest(request, segment, this)) return;
                ReceiveSynchronized(segment);
                break;
        }
    }

    private void ParseTimestamp(in Segment segment)
    {
        TcpOptions o = segment.Header.Options;
        _sawTimestamp = o.HasTimestamp && (TimestampsOk || _state == TcpState.SynSent && Sysctls.TcpTimestamps != 0);
        _rcvTsVal = o.TsVal;
        _rcvTsEcr = o.TsEcr;
    }

    // ----- SYN_SENT (tcp_rcv_synsent_state_process) -----

    private void ReceiveInSynSent(in Segment segment)
    {
        ParseTimestamp(segment);
        if (segment.HasAck)
        {
            // "If SEG.ACK =< ISS, or SEG.ACK > SND.NXT, send a reset."
            if (segment.Ack <= SndUna || segment.Ack > SndNxt)
            {
                Counters.Drop(DropReason.TcpInvalidAck);
                _tcp.SendResetFor(Tuple, segment, CauseCode.TcpRstInvalidAck);
                return;
            }
            if (_sawTimestamp && _rcvTsEcr != 0 && _retransStamp is { } firstSyn
                && !new SeqNum(unchecked(_rcvTsEcr - TsOffset)).IsBetween(new SeqNum((uint)firstSyn.Milliseconds), new SeqNum(_tcp.TimestampClock)))
            {
                // The echoed timestamp is not from any SYN we sent (PAWS on the SYN-ACK).
                Counters.Increment(Mib.TcpExtPAWSActive);
                Counters.Drop(DropReason.TcpPaws);
                _tcp.SendResetFor(Tuple, segment, CauseCode.TcpRstInvalidAck);
                return;
            }
            if (segment.Rst)
            {
                ResetByPeer();
                return;
            }
            if (!segment.Syn)
            {
                Counters.Drop(DropReason.TcpFlags);
                return;
            }
            CompleteActiveOpen(segment);
            return;
        }
        if (segment.Rst)
        {
            Counters.Drop(DropReason.TcpReset);   // a RST without ACK cannot be about our SYN
            return;
        }
        if (segment.Syn)
        {
            SimultaneousOpen(segment);
            return;
        }
        Counters.Drop(DropReason.TcpFlags);
    }

    /// <summary>Our SYN was acknowledged by a SYN-ACK: options, sequence numbers, ESTABLISHED, then ACK.</summary>
    private void CompleteActiveOpen(in Segment synAck)
    {
        TcpOptions o = synAck.Header.Options;
        NegotiateFromPeerSyn(o);
        if (TimestampsOk) _advMss -= TimestampOptionSpace;
        SndWl1 = synAck.Seq;
        ProcessAck(synAck, updateTsRecent: false);
        RcvNxt = RcvWup = synAck.Seq + 1;
        Irs = synAck.Seq;
        SndWnd = synAck.Window;   // never scaled in a SYN
        MaxWindow = Math.Max(MaxWindow, SndWnd);
        if (_sawTimestamp) SetTsRecent(_rcvTsVal);
        SyncMss(MaxWindow);
        InitializeReceiveMss();
        InitTransfer();
        SetState(TcpState.Established);
        if (Options.KeepAlive) ArmKeepalive(KeepaliveTime);
        bool synDataResent = (_synFastOpen || _synData) && FastOpenSynAckReceived(synAck);
        Observer?.OnWritable(this);
        if (ReadableBytes > 0 || _finReceived) Observer?.OnReadable(this);
        // Data queued during the handshake (Fast Open) leaves now carrying the ACK; otherwise a pure ACK.
        SeqNum sent = SndNxt;
        if (DataEnd > SndNxt) PushPendingFrames(nagle: !Options.NoDelay);
        if (SndNxt == sent && !synDataResent) SendAck(new PacketCause(CauseCode.TcpHandshakeAck));
    }

    /// <summary>Crossed SYNs: both sides sent a SYN; we answer with SYN-ACK and go to SYN_RECV.</summary>
    private void SimultaneousOpen(in Segment syn)
    {
        TcpOptions o = syn.Header.Options;
        NegotiateFromPeerSyn(o);
        SetState(TcpState.SynReceived);
        if (_sawTimestamp) SetTsRecent(_rcvTsVal);
        RcvNxt = RcvWup = syn.Seq + 1;
        Irs = syn.Seq;
        SndWnd = syn.Window;
        SndWl1 = syn.Seq;
        MaxWindow = SndWnd;
        SyncMss(MaxWindow);
        InitializeReceiveMss();
        // tcp_send_synack: our SYN again, now with the ACK bit.
        if (_tcp.RentSegmentBuffer(Tuple.RemoteAddress) is { } buffer)
        {
            var header = new TcpHeader
            {
                SourcePort = Tuple.LocalPort,
                DestinationPort = Tuple.RemotePort,
                SequenceNumber = Iss.Value,
                AcknowledgmentNumber = RcvNxt.Value,
                Flags = TcpFlags.Syn | TcpFlags.Ack,
                Window = (ushort)Math.Min(RcvWnd, 65535),
            };
            header.Options.SetMss((ushort)_advMss);
            if (TimestampsOk) header.Options.SetTimestamp(_tcp.TimestampClock + TsOffset, TsRecent);
            if (ReceiveWindowScale != 0 || SendWindowScale != 0) header.Options.SetWindowScale(ReceiveWindowScale);
            header.Options.SackPermitted = SackOk;
            Send(header, buffer, new PacketCause(CauseCode.TcpSynAck), retransmission: false, carriesData: true);
        }
    }

    /// <summary>What the peer's SYN (or SYN-ACK) allows, against our sysctls (tcp_parse_options on a SYN).</summary>
    private void NegotiateFromPeerSyn(in TcpOptions o)
    {
        _peerMss = Math.Min(o.HasMss && o.Mss != 0 ? o.Mss : DefaultPeerMss, Options.MaxSegment ?? int.MaxValue);
        TimestampsOk = o.HasTimestamp && Sysctls.TcpTimestamps != 0;
        SackOk = o.SackPermitted && Sysctls.TcpSack;
        bool windowScaleOk = o.HasWindowScale && Sysctls.TcpWindowScaling;
        SendWindowScale = windowScaleOk ? Math.Min(o.WindowScale, (byte)InitialWindow.MaxWindowScale) : (byte)0;
        if (!windowScaleOk)
        {
            ReceiveWindowScale = 0;
            _windowClamp = Math.Min(_windowClamp, 65535);
        }
    }

    /// <summary>tcp_initialize_rcv_mss: a cautious first guess of the peer's segment size.</summary>
    private void InitializeReceiveMss()
    {
        int hint = Math.Min(_advMss, _mssCache);
        hint = Math.Min(hint, RcvWnd / 2);
        hint = Math.Min(hint, DefaultPeerMss);
        _ackState.RcvMss = Math.Max(hint, MinMss);
    }

    /// <summary>tcp_init_transfer: initial cwnd, RTO fallback when the handshake gave no RTT sample, buffer limits.</summary>
    private void InitTransfer()
    {
        if (_synAckRtt is { } rtt)
        {
            // tcp_synack_rtt_meas: the SYN-ACK's round trip is the first sample, and the first minimum.
            _rtt.ObserveMinRtt(rtt);
            _rtt.AddSample(rtt, SndUna, SndNxt);
            _backoff = 0;
        }
        _rtt.UseFallbackIfNoSample();
        // RFC 5681: cwnd 1 when more than one SYN or SYN-ACK had to be retransmitted (and the
        // timeout's reduction was not undone). ssthresh keeps what a SYN timeout set.
        _window.Cwnd = _totalRetrans > 1 && _undoMarker is not null ? 1 : InitialCwnd;
        _window.Stamp = Now;
        _window.PriorSsthresh = 0;
        _cc.Init(this);   // tcp_init_congestion_control
        InitBufferSpace();
        _lastSendTime = Now;
        _retransStamp = null;
        _retransmits = 0;
    }

    // ----- Synchronized states (tcp_rcv_state_process, tcp_rcv_established) -----

    private void ReceiveSynchronized(in Segment segment)
    {
        ParseTimestamp(segment);
        if (!segment.HasAck && !segment.Rst && !segment.Syn)
        {
            // No ACK, RST or SYN (a NULL segment or a FIN without ACK): dropped, counted.
            Counters.Drop(DropReason.TcpFlags);
            return;
        }
        if (!ValidateIncoming(segment)) return;

        int ackResult = ProcessAck(segment, updateTsRecent: true);
        if (ackResult <= 0)
        {
            if (_state == TcpState.SynReceived)
            {
                // An unacceptable ACK of our SYN-ACK: reset it.
                Counters.Drop(DropReason.TcpInvalidAck);
                _tcp.SendResetFor(Tuple, segment, CauseCode.TcpRstInvalidAck);
                return;
            }
            if (ackResult < 0)
            {
                // ESTABLISHED drops it silently; the closing states answer with a challenge ACK.
                if (_state != TcpState.Established) SendChallengeAck();
                Counters.Drop(DropReason.TcpInvalidAck);
                return;
            }
        }

        // A Fast Open child closed before its handshake completed: this ACK completes it.
        if (_state == TcpState.FinWait1) FastOpenHandshakeDone();
        switch (_state)
        {
            case TcpState.SynReceived:
                EstablishPassive(segment);
                break;
            case TcpState.FinWait1 when SndUna == WriteSeq:
                if (!OurFinAcknowledged(segment)) return;
                break;
            case TcpState.Closing when SndUna == WriteSeq:
                EnterTimeWait(TcpState.TimeWait, TimeSpan.Zero);
                return;
            case TcpState.LastAck when SndUna == WriteSeq:
                Done();
                return;
        }

        // Step 7: the segment text. After a FIN from the peer only old (retransmitted) data matters.
        switch (_state)
        {
            case TcpState.CloseWait or TcpState.Closing or TcpState.LastAck when segment.Seq >= RcvNxt:
                break;
            case TcpState.CloseWait or TcpState.Closing or TcpState.LastAck or TcpState.FinWait1 or TcpState.FinWait2
                or TcpState.Established:
                if (_state is TcpState.FinWait1 or TcpState.FinWait2 && _orphaned
                    && segment.EndSeq - (segment.Fin ? 1 : 0) > RcvNxt && segment.Length > 0)
                {
                    // Data for an application that has closed: RFC 1122 says reset.
                    Counters.Increment(Mib.TcpExtTCPAbortOnData);
                    _tcp.SendResetFor(Tuple, segment, CauseCode.TcpRstAbort);
                    ResetByPeer(reportedAs: Errno.ECONNRESET);
                    return;
                }
                QueueData(segment);
                break;
        }
        if (_state == TcpState.Closed) return;
        if (_state == TcpState.Established) MeasureReceiverRttByTimestamp(segment);
        DataSendCheck();
        AckSendCheck();
    }

    /// <summary>SYN_RECV with an acceptable ACK: ESTABLISHED (the passive side of tcp_rcv_state_process).</summary>
    private void EstablishPassive(in Segment segment)
    {
        if (TimestampsOk) _advMss -= TimestampOptionSpace;
        SndUna = segment.Ack;
        SndWnd = segment.Window << SendWindowScale;
        SndWl1 = segment.Seq;
        MaxWindow = Math.Max(MaxWindow, SndWnd);
        if (_fastOpenRequest is not null)
        {
            // A Fast Open child did tcp_init_transfer when it was made from the SYN.
            FastOpenHandshakeDone();
        }
        else
        {
            if (!_rtt.HasSample && _sawTimestamp && _rcvTsEcr != 0 && _synAckRtt is null)
                _synAckRtt = TimestampRtt();
            InitTransfer();
        }
        SetState(TcpState.Established);
        SyncMss(MaxWindow);
        InitializeReceiveMss();
        if (_sendShutdown) ShutdownSend();
    }

    /// <summary>FIN_WAIT_1 and our FIN is acknowledged: FIN_WAIT_2, bounded in time only for orphans.</summary>
    private bool OurFinAcknowledged(in Segment segment)
    {
        SetState(TcpState.FinWait2);
        _sendShutdown = true;
        if (!_orphaned)
        {
            Observer?.OnWritable(this);
            return true;
        }
        if (Options.Linger2 is { } linger2 && linger2 < TimeSpan.Zero)
        {
            Counters.Increment(Mib.TcpExtTCPAbortOnData);
            Done();
            return false;
        }
        if (segment.EndSeq != segment.Seq && segment.EndSeq - (segment.Fin ? 1 : 0) > RcvNxt)
        {
            // Out-of-order FIN (or data) after close(): give up.
            Counters.Increment(Mib.TcpExtTCPAbortOnData);
            Done();
            return false;
        }
        TimeSpan timeout = FinTimeout;
        if (timeout > TimeWaitSocket.TimeWaitLength) ArmKeepalive(timeout - TimeWaitSocket.TimeWaitLength);
        else if (segment.Fin) ArmKeepalive(timeout);   // keep the full socket so this FIN is processed
        else
        {
            EnterTimeWait(TcpState.FinWait2, timeout);
            return false;
        }
        return true;
    }

    /// <summary>
    /// tcp_validate_incoming: PAWS, the sequence check (unacceptable segments get a rate-limited
    /// duplicate ACK), and RFC 5961: a RST must match rcv_nxt exactly or it only draws a
    /// challenge ACK; a SYN in a synchronized state draws a challenge ACK.
    /// </summary>
    private bool ValidateIncoming(in Segment segment)
    {
        if (_sawTimestamp && TimestampsOk && PawsDiscards(segment))
        {
            if (!segment.Rst)
            {
                if (segment.Syn)
                {
                    SynChallenge();
                    return false;
                }
                Counters.Increment(Mib.TcpExtPAWSEstab);
                if (!OutOfWindowRateLimited(segment, Mib.TcpExtTCPACKSkippedPAWS)) SendDuplicateAck(segment);
                Counters.Drop(DropReason.TcpPaws);
                return false;
            }
            // A reset is accepted even if it fails PAWS.
        }

        if (segment.EndSeq < RcvWup || segment.Seq > RcvNxt + ReceiveWindowRemaining)
        {
            if (!segment.Rst)
            {
                if (segment.Syn)
                {
                    SynChallenge();
                    return false;
                }
                if (!OutOfWindowRateLimited(segment, Mib.TcpExtTCPACKSkippedSeq)) SendDuplicateAck(segment);
            }
            else if (ResetMatchesAfterFin(segment))
            {
                ResetByPeer();
                return false;
            }
            Counters.Drop(DropReason.TcpInvalidSequence);
            return false;
        }

        if (segment.Rst)
        {
            if (segment.Seq == RcvNxt || ResetMatchesAfterFin(segment) || segment.Seq == HighestSackEnd())
            {
                ResetByPeer();
                return false;
            }
            // In window but not exact: only a challenge ACK (RFC 5961 3.2).
            SendChallengeAck();
            Counters.Drop(DropReason.TcpReset);
            return false;
        }

        if (segment.Syn)
        {
            SynChallenge();
            return false;
        }
        return true;
    }

    /// <summary>tcp_reset_check: after the peer's FIN, a reset one below rcv_nxt is exact too.</summary>
    private bool ResetMatchesAfterFin(in Segment segment) =>
        segment.Seq == RcvNxt - 1 && _state is TcpState.CloseWait or TcpState.LastAck or TcpState.Closing;

    /// <summary>The right edge of the SACK blocks we would send: RFC 5961 3.2 accepts a RST there too.</summary>
    private SeqNum? HighestSackEnd() => SackOk ? _sackBlocks.HighestEnd : null;

    /// <summary>
    /// tcp_send_dupack: ACK an unacceptable segment at once; if it repeats data we have, the ACK
    /// was probably lost: quick-ACK mode, and a D-SACK for the duplicate (RFC 2883).
    /// </summary>
    private void SendDuplicateAck(in Segment segment)
    {
        if (segment.EndSeq != segment.Seq && segment.Seq < RcvNxt)
        {
            Counters.Increment(Mib.TcpExtDelayedACKLost);
            EnterQuickAckMode();
            SetDuplicateSack(segment.Seq, SeqNum.Min(segment.EndSeq, RcvNxt));
        }
        SendAck(new PacketCause(CauseCode.TcpDuplicateAckOutOfWindow));
    }

    /// <summary>tcp_dsack_set: report [seq, end) as received twice in the next ACK.</summary>
    private void SetDuplicateSack(SeqNum seq, SeqNum end)
    {
        if (!SackOk || !Sysctls.TcpDsack) return;
        Counters.Increment(seq < RcvNxt ? Mib.TcpExtTCPDSACKOldSent : Mib.TcpExtTCPDSACKOfoSent);
        _sackBlocks.SetDuplicate(seq, end);
    }

    /// <summary>tcp_dsack_extend: widen the pending D-SACK, or set one.</summary>
    private void ExtendDuplicateSack(SeqNum seq, SeqNum end)
    {
        if (_sackBlocks.Duplicate is null) SetDuplicateSack(seq, end);
        else _sackBlocks.ExtendDuplicate(seq, end);
    }

    /// <summary>
    /// D-SACKs for [seq, end) arriving over data already held out of order (tcp_data_queue_ofo,
    /// tcp_ofo_queue): the first overlap sets the D-SACK, later ones extend it.
    /// </summary>
    private void ReportOverlapWithOutOfOrder(SeqNum seq, SeqNum end, bool extendOnly)
    {
        foreach (var (start, stop) in _receiveBuffer.OutOfOrder)
        {
            if (stop <= seq) continue;
            if (start >= end) break;
            SeqNum from = SeqNum.Max(seq, start), to = SeqNum.Min(end, stop);
            if (extendOnly) ExtendDuplicateSack(from, to);
            else SetDuplicateSack(from, to);
            extendOnly = true;
        }
    }

    private void SynChallenge()
    {
        Counters.Increment(Mib.TcpInErrs);
        Counters.Increment(Mib.TcpExtTCPSYNChallenge);
        SendChallengeAck();
        Counters.Drop(DropReason.TcpInvalidSyn);
    }

    /// <summary>tcp_send_challenge_ack: per-connection rate limit, then the host-wide RFC 5961 quota.</summary>
    private void SendChallengeAck()
    {
        if (_tcp.IsRateLimited(ref _lastOutOfWindowAnswer, Mib.TcpExtTCPACKSkippedChallenge)) return;
        if (!_tcp.ChallengeAckAllowed()) return;
        Counters.Increment(Mib.TcpExtTCPChallengeACK);
        SendAck(new PacketCause(CauseCode.TcpChallengeAck));
    }

    /// <summary>tcp_oow_rate_limited: data segments are never limited, only SYNs and pure ACKs.</summary>
    private bool OutOfWindowRateLimited(in Segment segment, Mib skipped) =>
        (segment.Length > 0 || segment.Fin) && !segment.Syn ? false : _tcp.IsRateLimited(ref _lastOutOfWindowAnswer, skipped);

    /// <summary>tcp_paws_discard: older timestamp than ts_recent (allowing 1 tick), unless it is a harmless duplicate ACK.</summary>
    private bool PawsDiscards(in Segment segment)
    {
        TimeSpan age = TsRecentStamp is { } stamp ? Now - stamp : TimeSpan.MaxValue;
        if (Paws.Check(TsRecent, _rcvTsVal, age, window: 1)) return false;
        bool disorderedAck = segment.HasAck && segment.Seq == segment.EndSeq && segment.Seq == RcvNxt
                             && segment.Ack == SndUna && !MayUpdateWindow(segment.Ack, segment.Seq, segment.Window << SendWindowScale)
                             && unchecked((int)(TsRecent - _rcvTsVal)) <= Math.Max(1, (int)(_rtt.Rto.TotalMilliseconds));
        return !disorderedAck;
    }

    // ----- ACK processing helpers (tcp_ack itself is in .Recovery) -----

    /// <summary>RTT from the echoed timestamp in ms (tcp_rtt_tsopt_us: at least one tick).</summary>
    private TimeSpan TimestampRtt()
    {
        uint delta = unchecked(_tcp.TimestampClock + TsOffset - _rcvTsEcr);
        return TimeSpan.FromMilliseconds(Math.Max(1u, delta));
    }

    /// <summary>tcp_replace_ts_recent: remember the peer's TSval of a segment at or before rcv_wup (RFC 7323 4.3).</summary>
    private void ReplaceTsRecent(SeqNum seq)
    {
        if (!_sawTimestamp || seq > RcvWup) return;
        TimeSpan age = TsRecentStamp is { } stamp ? Now - stamp : TimeSpan.MaxValue;
        if (Paws.Check(TsRecent, _rcvTsVal, age)) SetTsRecent(_rcvTsVal);
    }

    /// <summary>tcp_may_update_window (RFC 9293 3.10.7.4: SND.WL1/SND.WL2).</summary>
    private bool MayUpdateWindow(SeqNum ack, SeqNum ackSeq, int window) =>
        ack > SndUna || ackSeq > SndWl1 || (ackSeq == SndWl1 && (window > SndWnd || window == 0));

    /// <summary>tcp_ack_update_window + tcp_snd_una_update; true when the window may be updated (FLAG_WIN_UPDATE).</summary>
    private bool UpdateWindow(in Segment segment, SeqNum ack)
    {
        int window = segment.Syn ? segment.Window : segment.Window << SendWindowScale;
        bool update = MayUpdateWindow(ack, segment.Seq, window);
        if (update)
        {
            SndWl1 = segment.Seq;
            if (SndWnd != window)
            {
                SndWnd = window;
                if (window > MaxWindow)
                {
                    MaxWindow = window;
                    SyncMss(MaxWindow);
                }
            }
        }
        if (ack > SndUna)
        {
            _bytesAcked += ack - SndUna;
            SndUna = ack;
        }
        return update;
    }

    /// <summary>tcp_ack_probe: a window opened while nothing was in flight; stop or re-time the persist timer.</summary>
    private void AckProbe()
    {
        if (DataEnd <= SndNxt && !(_finQueued && SndNxt < WriteSeq)) return;
        int next = Math.Min(DataEnd - SndNxt, _mssCache);
        if (SndNxt + Math.Max(next, 1) <= WindowEnd)
        {
            _backoff = 0;
            _probesStamp = null;
            if (_pendingTimer == PendingTimer.Probe0) CancelRetransmitTimer();
        }
        else
        {
            ArmPending(PendingTimer.Probe0, PersistTimeout());
        }
    }

    /// <summary>tcp_data_snd_check: send what can go now, tell a waiting application there is room.</summary>
    private void DataSendCheck()
    {
        PushPendingFrames(nagle: !Options.NoDelay);
        CheckSendSpace();
    }

    // ----- Data (tcp_data_queue) -----

    private void QueueData(in Segment segment)
    {
        if (segment.Seq == segment.EndSeq) return;   // a pure ACK
        ReadOnlySpan<byte> payload = segment.Payload;
        _sackBlocks.ClearDuplicate();   // a D-SACK goes out with the ACK of the segment that caused it

        if (segment.Seq == RcvNxt || (segment.Seq < RcvNxt && segment.EndSeq > RcvNxt))
        {
            // A partial retransmission: its head is a duplicate.
            if (segment.Seq < RcvNxt) SetDuplicateSack(segment.Seq, RcvNxt);
            if (ReceiveWindowRemaining == 0 && !(payload.Length == 0 && segment.Fin))
            {
                Counters.Increment(Mib.TcpExtTCPZeroWindowDrop);
                Counters.Drop(DropReason.TcpMemory);
                OutOfWindow();
                return;
            }
            int skip = RcvNxt - segment.Seq;   // drop what we have
            ReadOnlySpan<byte> fresh = skip > 0 ? payload[Math.Min(skip, payload.Length)..] : payload;
            bool hadOutOfOrder = _receiveBuffer.OutOfOrder.Count > 0;
            if (hadOutOfOrder && fresh.Length > 0) ReportOverlapWithOutOfOrder(RcvNxt, RcvNxt + fresh.Length, extendOnly: true);
            SeqNum newRcvNxt = RcvNxt;
            int truesize = SegmentTruesize(segment);
            // An empty queue always takes the segment (sk_forced_mem_schedule); else tcp_try_rmem_schedule.
            bool memory = _receiveBuffer.Used == 0 || ReceiveMemoryAvailable();
            if (fresh.Length > 0 && (!memory || !_receiveBuffer.Store(RcvNxt, fresh, RcvNxt, truesize, out newRcvNxt)))
            {
                // tcp_try_rmem_schedule failed: advertise a zero window and drop.
                Counters.Increment(Mib.TcpExtTCPRcvQDrop);
                Counters.Drop(DropReason.TcpMemory);
                _ackState.Now = true;
                _ackState.Scheduled = true;
                return;
            }
            if (fresh.Length > 0)
            {
                RcvNxt = newRcvNxt;
                BytesReceived += fresh.Length;
                DataReceived(segment, payload.Length, truesize);
            }
            if (segment.Fin && RcvNxt == segment.EndSeq - 1) ReceiveFin();
            // RFC 5681 4.2: ACK at once when a hole is filled.
            if (hadOutOfOrder && _receiveBuffer.OutOfOrder.Count == 0) _ackState.Now = true;
            if (_sackBlocks.Count > 0) _sackBlocks.RemoveCovered(RcvNxt, _receiveBuffer.OutOfOrder.Count == 0);
            if (!_orphaned) Observer?.OnReadable(this);
            return;
        }

        if (segment.EndSeq <= RcvNxt)
        {
            // A retransmission of what we have: the ACK was probably lost, answer at once.
            Counters.Increment(Mib.TcpExtDelayedACKLost);
            Counters.Drop(DropReason.TcpInvalidSequence);
            SetDuplicateSack(segment.Seq, segment.EndSeq);
            OutOfWindow();
            return;
        }
        if (segment.Seq >= RcvNxt + ReceiveWindowRemaining)
        {
            // Beyond the window, e.g. a zero-window probe: ACK to tell the window.
            Counters.Drop(DropReason.TcpInvalidSequence);
            OutOfWindow();
            return;
        }
        QueueOutOfOrder(segment);
    }

    /// <summary>
    /// tcp_data_queue_ofo: hold the segment at its place, D-SACK what was already held, put its
    /// block first among the SACK blocks, and schedule the duplicate ACK.
    /// </summary>
    private void QueueOutOfOrder(in Segment segment)
    {
        ReadOnlySpan<byte> payload = segment.Payload;
        int truesize = SegmentTruesize(segment);
        SeqNum seq = segment.Seq, end = segment.Seq + payload.Length;
        bool allPresent = false;
        foreach (var (start, stop) in _receiveBuffer.OutOfOrder)
        {
            if (start <= seq && end <= stop) allPresent = true;
        }
        if (allPresent)
        {
            // All the bits are present: drop it, report it.
            Counters.Increment(Mib.TcpExtTCPOFOMerge);
            SetDuplicateSack(seq, end);
        }
        else
        {
            ReportOverlapWithOutOfOrder(seq, end, extendOnly: false);
            if (!ReceiveMemoryAvailable() || !_receiveBuffer.Store(seq, payload, RcvNxt, truesize, out _))
            {
                Counters.Increment(Mib.TcpExtTCPOFODrop);
                Counters.Drop(DropReason.TcpMemory);
                _sackBlocks.ClearDuplicate();
                return;
            }
            if (SackOk) GrowWindow(payload.Length, truesize);   // without SACK the window stays, so duplicate ACKs stay duplicates
        }
        MeasureReceiveMss(segment, payload.Length, truesize);
        _ackState.Scheduled = true;
        Counters.Increment(Mib.TcpExtTCPOFOQueue);
        if (SackOk && _sackBlocks.AddOutOfOrder(seq, end)) SendCompressedAckNow();
    }

    /// <summary>The segment was unacceptable or a duplicate: quick-ACK mode so the answer goes now.</summary>
    private void OutOfWindow()
    {
        EnterQuickAckMode();
        _ackState.Scheduled = true;
    }

    /// <summary>tcp_fin: the peer will send no more; the state moves accordingly.</summary>
    private void ReceiveFin()
    {
        RcvNxt += 1;
        _ackState.Scheduled = true;
        _receiveShutdown = true;
        _finReceived = true;
        switch (_state)
        {
            case TcpState.SynReceived or TcpState.Established:
                SetState(TcpState.CloseWait);
                _ackState.Pingpong = Sysctls.TcpPingpongThresh;   // inet_csk_enter_pingpong_mode
                break;
            case TcpState.FinWait1:
                // Simultaneous close: ACK their FIN, wait for ours to be acknowledged.
                SendAck(new PacketCause(CauseCode.TcpFinAck));
                SetState(TcpState.Closing);
                break;
            case TcpState.FinWait2:
                SendAck(new PacketCause(CauseCode.TcpFinAck));
                EnterTimeWait(TcpState.TimeWait, TimeSpan.Zero);
                break;
        }
        // Out-of-order data beyond the FIN cannot be delivered.
        _receiveBuffer.PurgeOutOfOrder();
        _sackBlocks.Clear();
    }

    /// <summary>tcp_reset: the peer reset us. The error the application sees depends on the state, as in Linux.</summary>
    private void ResetByPeer(Errno? reportedAs = null)
    {
        Errno error = reportedAs ?? _state switch
        {
            TcpState.SynSent => Errno.ECONNREFUSED,
            TcpState.CloseWait => Errno.EPIPE,
            _ => Errno.ECONNRESET,
        };
        _sent.Clear();
        Done(error);
    }

    /// <summary>tcp_v4_err for a connection: hard errors end a handshake; later they are only remembered.</summary>
    internal void ReceiveIcmpError(Errno error, SeqNum seq)
    {
        if (seq != SndUna && !seq.IsBetween(SndUna, SndNxt))
        {
            Counters.Increment(Mib.TcpExtOutOfWindowIcmps);
            return;
        }
        if (_state is TcpState.SynSent or TcpState.SynReceived && error is Errno.EHOSTUNREACH or Errno.ENETUNREACH or Errno.ECONNREFUSED or Errno.ENOPROTOOPT)
        {
            Done(error);
            return;
        }
        _softError = error;
    }

    // ----- Delayed ACK engine (tcp_event_data_recv, __tcp_ack_snd_check) -----

    private struct AckState
    {
        public bool Scheduled;      // ICSK_ACK_SCHED
        public bool TimerArmed;     // ICSK_ACK_TIMER
        public bool Pushed;         // ICSK_ACK_PUSHED
        public bool Pushed2;        // ICSK_ACK_PUSHED2
        public bool Now;            // ICSK_ACK_NOW
        public int Quick;
        public int Pingpong;
        public TimeSpan Ato;
        public Instant LastReceive; // lrcvtime
        public int RcvMss;
        public int LastSegmentSize;

        /// <summary>inet_csk_clear_xmit_timer(ICSK_TIME_DACK): an ACK went out, nothing is pending.</summary>
        public void Clear() => Scheduled = TimerArmed = Pushed = Pushed2 = Now = false;
    }

    private AckState _ackState;

    private static readonly TimeSpan AtoMin = TimeSpan.FromMilliseconds(40);        // TCP_ATO_MIN
    private static readonly TimeSpan DelayedAckMax = TimeSpan.FromMilliseconds(200); // TCP_DELACK_MAX
    private const int MaxQuickAcks = 16;                                             // TCP_MAX_QUICKACKS

    private bool InPingpongMode => _ackState.Pingpong >= Sysctls.TcpPingpongThresh;
    private bool InQuickAckMode => _ackState.Quick > 0 && !InPingpongMode;

    /// <summary>tcp_event_data_recv: in-order data arrived; estimate the peer's segment size and the ACK delay.</summary>
    private void DataReceived(in Segment segment, int length, int truesize)
    {
        _ackState.Scheduled = true;
        MeasureReceiveMss(segment, length, truesize);
        MeasureReceiverRttByWindow();
        if (_ackState.Ato == TimeSpan.Zero)
        {
            // The first data: start with quick ACKs.
            IncreaseQuickAcks(MaxQuickAcks);
            _ackState.Ato = AtoMin;
        }
        else
        {
            TimeSpan gap = Now - _ackState.LastReceive;
            if (gap <= AtoMin / 2)
                _ackState.Ato = _ackState.Ato / 2 + AtoMin / 2;
            else if (gap < _ackState.Ato)
                _ackState.Ato = Min(_ackState.Ato / 2 + gap, _rtt.Rto, DelayedAckMax);
            else if (gap > _rtt.Rto)
                IncreaseQuickAcks(MaxQuickAcks);   // the sender stalled: ACK quickly again
        }
        _ackState.LastReceive = Now;
        if (length >= 128) GrowWindow(length, truesize);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b, TimeSpan c) => a < b ? (a < c ? a : c) : (b < c ? b : c);

    /// <summary>
    /// tcp_measure_rcv_mss: learn the peer's MSS from full-sized segments (a GRO superframe counts
    /// by its segment size) and, from a new size, the payload/truesize ratio; PSH marks ends of writes.
    /// </summary>
    private void MeasureReceiveMss(in Segment segment, int length, int truesize)
    {
        int lastSize = _ackState.LastSegmentSize;
        _ackState.LastSegmentSize = 0;
        int segmentSize = segment.GsoSize != 0 ? segment.GsoSize : length;
        if (segmentSize >= _ackState.RcvMss)
        {
            if (segmentSize != _ackState.RcvMss) MeasureScalingRatio(length, truesize);
            _ackState.RcvMss = Math.Min(segmentSize, _advMss);
            if (segment.Psh) _ackState.Pushed = true;
            return;
        }
        int withHeader = length + segment.Header.Length;
        if (withHeader >= DefaultPeerMss + 20 || (withHeader >= MinMss + 20 && !segment.Psh && !segment.Fin && !segment.Rst && !segment.Syn))
        {
            int invariant = withHeader - (TimestampsOk ? 32 : 20);
            _ackState.LastSegmentSize = invariant;
            if (invariant == lastSize)
            {
                _ackState.RcvMss = invariant;
                return;
            }
        }
        if (_ackState.Pushed) _ackState.Pushed2 = true;
        _ackState.Pushed = true;
    }

    private void IncreaseQuickAcks(int max)
    {
        int quickAcks = RcvWnd / (2 * Math.Max(1, _ackState.RcvMss));
        if (quickAcks == 0) quickAcks = 2;
        quickAcks = Math.Min(quickAcks, max);
        if (quickAcks > _ackState.Quick) _ackState.Quick = quickAcks;
    }

    /// <summary>tcp_enter_quickack_mode: ACK the next segments at once and leave interactive mode.</summary>
    private void EnterQuickAckMode()
    {
        IncreaseQuickAcks(MaxQuickAcks);
        _ackState.Pingpong = 0;
        _ackState.Ato = AtoMin;
    }

    /// <summary>
    /// __tcp_ack_snd_check: ACK now (two full segments, quick-ACK mode, a filled hole, or
    /// out-of-order data: every segment without SACK, the first three per hole with it), else
    /// delay it; further SACK-carrying ACKs for one hole are compressed (tcp_comp_sack_*).
    /// </summary>
    private void AckSendCheck()
    {
        if (!_ackState.Scheduled) return;
        bool twoSegments = RcvNxt - RcvWup > _ackState.RcvMss && SelectWindowRaw() >= RcvWnd;
        if (twoSegments || InQuickAckMode || _ackState.Now)
        {
            SendAck(AckCause());
            return;
        }
        if (_receiveBuffer.OutOfOrder.Count == 0)
        {
            ScheduleDelayedAck();
            return;
        }
        if (!SackOk || _compressedAck >= Sysctls.TcpCompSackNr)
        {
            SendAck(AckCause());
            return;
        }
        if (_compressedAckRcvNxt != RcvNxt)
        {
            _compressedAckRcvNxt = RcvNxt;
            _dupAckCounter = 0;
        }
        if (_dupAckCounter < 3)   // TCP_FASTRETRANS_THRESH
        {
            _dupAckCounter++;
            SendAck(AckCause());
            return;
        }
        _compressedAck++;
        if (_compressedAckTimer.IsArmed) return;
        // 5% of the RTT, at most tcp_comp_sack_delay_ns (an hrtimer: not rounded to jiffies).
        TimeSpan delay = _rtt.HasSample ? _rtt.SmoothedRtt / 20 : TimeSpan.Zero;
        if (delay > Sysctls.TcpCompSackDelay) delay = Sysctls.TcpCompSackDelay;
        _compressedAckTimer.Arm(Now + delay);
    }

    // ----- SACK compression (tcp_sack_compress_send_ack, tcp_compressed_ack_kick) -----

    private int _compressedAck;          // tp->compressed_ack: ACKs held back
    private SeqNum _compressedAckRcvNxt;
    private int _dupAckCounter;          // tp->dup_ack_counter: immediate duplicate ACKs for this rcv_nxt
    private SeqNum _dupAckRcvNxt;        // for the trace: which hole the duplicate ACKs are about
    private int _dupAckNumber;

    /// <summary>Words an ACK: a duplicate ACK (numbered per hole) while out-of-order data is held.</summary>
    private PacketCause AckCause()
    {
        if (SackOk && _sackBlocks.Duplicate is not null) return new PacketCause(CauseCode.TcpDuplicateDataAck);
        if (_receiveBuffer.OutOfOrder.Count == 0) return new PacketCause(CauseCode.TcpAck);
        if (_dupAckRcvNxt != RcvNxt)
        {
            _dupAckRcvNxt = RcvNxt;
            _dupAckNumber = 0;
        }
        return new PacketCause(CauseCode.TcpDuplicateAck, ++_dupAckNumber);
    }

    /// <summary>tcp_sack_compress_send_ack: a new SACK block beyond the first two goes out at once, with what was held back.</summary>
    private void SendCompressedAckNow()
    {
        if (_compressedAck == 0) return;
        _compressedAckTimer.Cancel();
        Counters.Increment(Mib.TcpExtTCPAckCompressed, _compressedAck - 1);
        _compressedAck = 0;
        SendAck(AckCause());
    }

    /// <summary>tcp_compressed_ack_kick: the compression delay is over; one ACK stands for those held back.</summary>
    private void OnCompressedAckTimer()
    {
        if (_compressedAck == 0 || _state is TcpState.Closed) return;
        _compressedAck--;   // the ACK about to go is not a compressed one
        SendAck(AckCause());
    }

    /// <summary>tcp_send_delayed_ack: the timer runs ato (bounded by the RTT and 200 ms, 500 ms when not interactive).</summary>
    private void ScheduleDelayedAck()
    {
        TimeSpan ato = _ackState.Ato;
        if (ato > AtoMin)
        {
            TimeSpan maxAto = InPingpongMode || _ackState.Pushed ? DelayedAckMax : TimeSpan.FromMilliseconds(500);
            if (_rtt.HasSample)
            {
                TimeSpan rtt = _rtt.SmoothedRtt < AtoMin ? AtoMin : _rtt.SmoothedRtt;
                if (rtt < maxAto) maxAto = rtt;
            }
            if (ato > maxAto) ato = maxAto;
        }
        if (ato > DelayedAckMax) ato = DelayedAckMax;
        Instant deadline = _tcp.Deadline(ato);
        if (_ackState.TimerArmed)
        {
            // An older, earlier deadline stands; one about to expire means ACK now.
            Instant current = _delayedAckTimer.Deadline;
            if (current <= Now + ato / 4)
            {
                SendAck(new PacketCause(CauseCode.TcpAck));
                return;
            }
            if (deadline > current) deadline = current;
        }
        _ackState.Scheduled = true;
        _ackState.TimerArmed = true;
        _delayedAckTimer.Arm(deadline);
    }

    /// <summary>tcp_event_ack_sent: the ACK we just sent settles what was pending.</summary>
    private void AckSent()
    {
        if (_ackState.Quick > 0)
        {
            int packets = _ackState.Scheduled ? 1 : 0;
            if (packets >= _ackState.Quick)
            {
                _ackState.Quick = 0;
                _ackState.Ato = AtoMin;
            }
            else _ackState.Quick -= packets;
        }
        _ackState.Clear();
        _delayedAckTimer.Cancel();
        if (_compressedAck > 0)
        {
            Counters.Increment(Mib.TcpExtTCPAckCompressed, _compressedAck);
            _compressedAck = 0;
            _compressedAckTimer.Cancel();
        }
    }

    /// <summary>tcp_cleanup_rbuf: after the application read, ACK if one is due or the window grew a lot.</summary>
    private void CleanupReceiveBuffer(int copied)
    {
        if (_state is TcpState.Closed or TcpState.SynSent) return;
        bool timeToAck = false;
        if (_ackState.Scheduled)
        {
            timeToAck = RcvNxt - RcvWup > _ackState.RcvMss
                        || (copied > 0 && (_ackState.Pushed2 || (_ackState.Pushed && !InPingpongMode)) && _receiveBuffer.Memory == 0);
        }
        if (copied > 0 && !timeToAck && !_receiveShutdown)
        {
            int now = ReceiveWindowRemaining;
            if (2 * now <= _windowClamp)
            {
                int next = SelectWindowRaw();
                if (next != 0 && next >= 2 * now) timeToAck = true;
            }
        }
        if (timeToAck) SendAck(new PacketCause(CauseCode.TcpWindowUpdate));
    }
}
