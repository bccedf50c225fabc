using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp.Congestion;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// Time-based loss detection (RFC 8985, tcp_recovery.c): RACK marks a segment lost when one sent
/// after it was delivered and a reordering window has passed; the tail loss probe
/// (tcp_schedule_loss_probe, tcp_send_loss_probe) makes the last segments draw an ACK so RACK
/// can see their loss without waiting for an RTO.
/// </summary>
public sealed partial class TcpConnection
{
    // ----- RACK (tcp_recovery.c, RFC 8985) -----

    /// <summary>tcp_rack_reo_wnd: the reordering window, min_rtt/4 per step (at most srtt); 0 while no reordering was seen and recovery (or the duplicate-ACK threshold) says loss.</summary>
    private TimeSpan RackReorderWindow()
    {
        if (_reordSeen == 0)
        {
            if (_caState >= CongestionState.Recovery) return TimeSpan.Zero;
            if (_sackedOut >= _reordering && (Sysctls.TcpRecovery & 4) == 0) return TimeSpan.Zero;
        }
        TimeSpan srtt = _rtt.HasSample ? _rtt.SmoothedRtt : TimeSpan.Zero;
        if (_rtt.MinRtt == TimeSpan.MaxValue) return srtt;
        TimeSpan window = TimeSpan.FromTicks(_rtt.MinRtt.Ticks / 4 * _rackReoWndSteps);
        return window < srtt ? window : srtt;
    }

    /// <summary>tcp_rack_skb_timeout: how long until the segment is overdue (RACK.rtt + reo_wnd after it was sent).</summary>
    private TimeSpan RackRemaining(in SentSegment segment, TimeSpan reorderWindow) => _rackRtt + reorderWindow - (Now - segment.LastSent);

    /// <summary>
    /// tcp_rack_advance: a segment was delivered; RACK remembers the latest send time among
    /// delivered segments, and the RTT of that delivery. An ambiguous retransmission delivered
    /// sooner than the minimum RTT is not believed.
    /// </summary>
    private void RackAdvance(bool everRetransmitted, SeqNum endSeq, Instant sent)
    {
        TimeSpan rtt = Now - sent;
        if (rtt < _rtt.MinRtt && everRetransmitted) return;
        _rackAdvanced = true;
        _rackRtt = rtt;
        if (SentAfter(sent, _rackSent, endSeq, _rackEndSeq))
        {
            _rackSent = sent;
            _rackEndSeq = endSeq;
        }
    }

    /// <summary>
    /// tcp_rack_detect_loss: every segment sent before the latest delivered one and still not
    /// delivered RACK.rtt + reo_wnd after its transmission is lost. Returns the longest time one
    /// still has to wait (zero if none).
    /// </summary>
    private TimeSpan RackDetectLoss(LossDetection by)
    {
        TimeSpan wait = TimeSpan.Zero;
        TimeSpan reorderWindow = RackReorderWindow();
        for (int i = 0; i < _sent.Count; i++)
        {
            ref SentSegment segment = ref _sent[i];
            if (segment.Sacked || (segment.Lost && !segment.Retransmitting)) continue;
            if (!SentAfter(_rackSent, segment.LastSent, _rackEndSeq, segment.End)) continue;
            TimeSpan remaining = RackRemaining(segment, reorderWindow);
            if (remaining <= TimeSpan.Zero) MarkLost(ref segment, by);
            else if (remaining > wait) wait = remaining;
        }
        return wait;
    }

    /// <summary>tcp_rack_mark_lost: after a delivery, mark losses; arm the reordering timer for segments not yet overdue.</summary>
    private bool RackMarkLost()
    {
        if (!_rackAdvanced) return false;
        _rackAdvanced = false;
        TimeSpan wait = RackDetectLoss(LossDetection.Rack);
        if (wait <= TimeSpan.Zero) return false;
        TimeSpan timeout = wait + TimeoutMin;
        ArmPending(PendingTimer.ReorderTimeout, timeout < _rtt.Rto ? timeout : _rtt.Rto);
        return true;
    }

    /// <summary>tcp_rack_reo_timeout: the reordering window passed; what is overdue is lost, recover it.</summary>
    private void RackReorderTimeout()
    {
        long priorLost = _lost;
        int priorInFlight = InFlight;
        RackDetectLoss(LossDetection.RackTimer);
        if (priorInFlight != InFlight)
        {
            if (_caState != CongestionState.Recovery)
            {
                EnterRecovery();
                CwndReduction(1, (int)(_lost - priorLost), AckFlags.None);
            }
            XmitRetransmitQueue();
        }
        if (_pendingTimer != PendingTimer.Retransmit) RearmRto();
    }

    /// <summary>
    /// tcp_rack_update_reo_wnd: a D-SACK after reordering means RACK fired too early; widen the
    /// window by min_rtt/4 (at most once per round trip) and keep it for 16 recoveries.
    /// </summary>
    private void RackUpdateReorderWindow(in SackTagState state)
    {
        if ((Sysctls.TcpRecovery & 2) != 0 || state.PriorDelivered == 0) return;
        if (state.PriorDelivered < _rackLastDelivered) _rackDsackSeen = false;
        if (_rackDsackSeen)
        {
            _rackReoWndSteps = Math.Min(255, _rackReoWndSteps + 1);
            _rackDsackSeen = false;
            _rackLastDelivered = _delivered;
            _rackReoWndPersist = RackRecoveryThreshold;
        }
        else if (_rackReoWndPersist == 0)
        {
            _rackReoWndSteps = 1;
        }
    }

    // ----- Tail loss probe (tcp_schedule_loss_probe, tcp_send_loss_probe) -----

    /// <summary>
    /// tcp_schedule_loss_probe: in Open or CWR with SACK, arm the probe timeout instead of the
    /// RTO: 2 × srtt, plus tcp_rto_min when only one segment is out (its ACK may be delayed),
    /// else plus 2 ms; no later than the RTO would fire.
    /// </summary>
    private bool ScheduleLossProbe(bool advancingRto)
    {
        int earlyRetrans = Sysctls.TcpEarlyRetrans;
        if (earlyRetrans is not (3 or 4) || PacketsOut == 0 || !SackOk
            || _caState is not (CongestionState.Open or CongestionState.Cwr))
            return false;
        TimeSpan timeout;
        if (_rtt.HasSample)
        {
            timeout = _rtt.TwiceSmoothedRtt + (PacketsOut == 1 ? Sysctls.TcpRtoMin : TimeoutMin);
        }
        else
        {
            timeout = RttEstimator.InitialRto;
        }
        TimeSpan rtoDelta = advancingRto ? _rtt.Rto : RtoDelta();
        if (rtoDelta > TimeSpan.Zero && rtoDelta < timeout) timeout = rtoDelta;   // the timer model rounds to ticks
        ArmPending(PendingTimer.LossProbe, timeout);
        return true;
    }

    /// <summary>tcp_rto_delta_us: how far in the future the RTO of the oldest segment lies.</summary>
    private TimeSpan RtoDelta() => PacketsOut == 0 ? _rtt.Rto : _sent.First.LastSent + _rtt.Rto - Now;

    /// <summary>
    /// tcp_send_loss_probe: the probe timer fired. Send one new segment if the window allows,
    /// else retransmit the last one; at most one probe is outstanding. The RTO then runs from now.
    /// </summary>
    private void SendLossProbe()
    {
        if (_tlpHighSeq is null)
        {
            _tlpRetrans = false;
            int length = Math.Min(DataEnd - SndNxt, CurrentMss);
            bool withFin = _finQueued && SndNxt < WriteSeq && SndNxt + length == DataEnd;
            bool sent = false;
            if ((length > 0 || withFin) && SndNxt + length + (withFin ? 1 : 0) <= WindowEnd)
            {
                // New data (or the FIN) if the peer's window takes it, whatever cwnd says.
                TransmitNewSegment(length, withFin, new PacketCause(CauseCode.TcpLossProbe, length));
                sent = true;
            }
            else if (PacketsOut > 0)
            {
                ref SentSegment last = ref _sent.Last;
                sent = RetransmitForProbe(ref last);
                _tlpRetrans = sent;
            }
            if (sent)
            {
                _tlpHighSeq = SndNxt;
                Counters.Increment(Mib.TcpExtTCPLossProbes);
                _pendingTimer = PendingTimer.None;   // so the RTO restarts from now
            }
        }
        RearmRto();
    }

    /// <summary>__tcp_retransmit_skb for the probe: sent again, but not counted as a retransmission in flight.</summary>
    private bool RetransmitForProbe(ref SentSegment segment)
    {
        if (segment.Start >= WindowEnd && segment.Start != SndUna) return false;
        segment.LastSent = Now;
        TransmitSegment(segment, new PacketCause(CauseCode.TcpLossProbe, segment.Length, 1), retransmission: true);
        segment.EverRetransmitted = true;
        segment.DeliveredAtSend = _delivered;
        _totalRetrans++;
        return true;
    }

    /// <summary>tcp_process_tlp_ack: did the probe repair a loss (reduce cwnd) or prove there was none?</summary>
    private void ProcessTlpAck(SeqNum ack, AckFlags flag)
    {
        if (_tlpHighSeq is not { } high || ack < high) return;
        if (!_tlpRetrans)
        {
            _tlpHighSeq = null;   // a probe of new data was acknowledged
        }
        else if ((flag & AckFlags.DsackTlp) != 0)
        {
            _tlpHighSeq = null;   // the original and the probe both arrived: no loss
        }
        else if (ack > high)
        {
            // The ACK advances past the probe: it repaired a loss, so reduce cwnd.
            InitCwndReduction();
            SetCaState(CongestionState.Cwr);
            EndCwndReduction();
            TryKeepOpen();
            Counters.Increment(Mib.TcpExtTCPLossProbeRecovery);
        }
        else if ((flag & (AckFlags.SndUnaAdvanced | AckFlags.NotDup | AckFlags.DataSacked)) == 0)
        {
            _tlpHighSeq = null;   // a pure duplicate ACK: original and probe both arrived
        }
    }

    /// <summary>tcp_set_xmit_timer: a loss probe if one may be scheduled, else the RTO.</summary>
    private void SetXmitTimer()
    {
        if (!ScheduleLossProbe(advancingRto: true)) RearmRto();
    }
}
