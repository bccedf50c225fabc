using System.Numerics;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp.Congestion;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The connection's timers, after net/ipv4/tcp_timer.c: one retransmit timer that serves as
/// RTO or persist (zero-window probe) timer (icsk_retransmit_timer and icsk_pending), the
/// delayed-ACK timer, and the keepalive timer that also bounds an orphaned FIN_WAIT_2.
/// </summary>
public sealed partial class TcpConnection
{
    /// <summary>TCP_RESOURCE_PROBE_INTERVAL: retry after a local failure to send.</summary>
    private static readonly TimeSpan ResourceProbeInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>What the retransmit timer is armed for (icsk_pending: ICSK_TIME_*).</summary>
    internal enum PendingTimer { None, Retransmit, Probe0, LossProbe, ReorderTimeout }

    private PendingTimer _pendingTimer;
    private int _backoff;            // icsk_backoff
    private int _retransmits;        // icsk_retransmits: timeouts since the last forward progress
    private Instant? _retransStamp;  // the first retransmission of the episode (the first SYN for a SYN): anchors the retries budget
    private int _probesOut;          // icsk_probes_out: unanswered zero-window or keepalive probes
    private Instant? _probesStamp;
    private Instant _lastSendTime;   // lsndtime

    /// <summary>What `ss -o` shows as timer:(kind,remaining,retries).</summary>
    public (string Kind, TimeSpan Remaining, int Retries)? TimerInfo
    {
        get
        {
            if (_pendingTimer != PendingTimer.None && _retransmitTimer.IsArmed)
                return (_pendingTimer == PendingTimer.Probe0 ? "persist" : "on", _retransmitTimer.Deadline - Now,
                        _pendingTimer == PendingTimer.Probe0 ? _probesOut : _retransmits);
            if (_keepaliveTimer.IsArmed)
                return (_state == TcpState.FinWait2 ? "timewait" : "keepalive", _keepaliveTimer.Deadline - Now, _probesOut);
            return null;
        }
    }

    /// <summary>The current RTO (icsk_rto), the smoothed RTT and its variation, for `ss -i`.</summary>
    public TimeSpan Rto => _rtt.Rto;
    public TimeSpan? SmoothedRtt => _rtt.HasSample ? _rtt.SmoothedRtt : null;
    public TimeSpan RttVariation => _rtt.RttVariation;
    public int Backoff => _backoff;
    public int Retransmits => _retransmits;
    public int TotalRetransmits => _totalRetrans;
    public int PeerWindow => SndWnd;

    private void ArmRetransmit(TimeSpan rto) => ArmPending(PendingTimer.Retransmit, rto);

    private void ArmPending(PendingTimer kind, TimeSpan delay)
    {
        _pendingTimer = kind;
        _retransmitTimer.Arm(_tcp.Deadline(delay));
    }

    private void CancelRetransmitTimer()
    {
        _pendingTimer = PendingTimer.None;
        _retransmitTimer.Cancel();
    }

    /// <summary>
    /// tcp_rearm_rto: the RTO restarts after forward progress; nothing in flight stops the timer.
    /// Replacing a loss probe or reordering timer, it keeps the time already elapsed since the
    /// oldest segment was sent.
    /// </summary>
    private void RearmRto()
    {
        if (_fastOpenRequest is not null) return;   // the timer resends the Fast Open SYN-ACK until the handshake completes
        if (PacketsOut == 0)
        {
            CancelRetransmitTimer();
            return;
        }
        TimeSpan rto = _rtt.Rto;
        if (_pendingTimer is PendingTimer.ReorderTimeout or PendingTimer.LossProbe)
        {
            TimeSpan delta = RtoDelta();
            rto = delta > TimeSpan.Zero ? delta : TimeSpan.FromMicroseconds(1);
        }
        ArmRetransmit(rto);
    }

    /// <summary>tcp_write_timer_handler: one timer, four uses.</summary>
    private void OnRetransmitTimer()
    {
        PendingTimer kind = _pendingTimer;
        if (_state is TcpState.Closed or TcpState.Listen)
        {
            _pendingTimer = PendingTimer.None;
            return;
        }
        switch (kind)
        {
            case PendingTimer.ReorderTimeout:
                RackReorderTimeout();
                break;
            case PendingTimer.LossProbe:
                SendLossProbe();
                break;
            case PendingTimer.Retransmit:
                _pendingTimer = PendingTimer.None;
                if (_fastOpenRequest is { } request) FastOpenSynAckTimeout(request);
                else RetransmitTimeout();
                break;
            case PendingTimer.Probe0:
                _pendingTimer = PendingTimer.None;
                ProbeTimer();
                break;
        }
    }

    /// <summary>
    /// tcp_retransmit_timer: give up if the time budget is spent (tcp_write_timeout), else
    /// enter the Loss state, retransmit the oldest segment, and back off: the RTO doubles,
    /// except for the first tcp_syn_linear_timeouts SYN retransmissions, which keep it.
    /// </summary>
    private void RetransmitTimeout()
    {
        if (PacketsOut == 0) return;
        if (SndWnd == 0 && !_orphaned && _state is not (TcpState.SynSent or TcpState.SynReceived))
        {
            // The receiver shrank its window to zero under data in flight: our retransmissions
            // serve as probes, bounded by silence rather than by retries.
            if (ZeroWindowRetransmitTimedOut())
            {
                WriteError();
                return;
            }
            EnterLoss();
            RetransmitHead();
            _backoff++;
            _rtt.Double();
            ArmRetransmit(_rtt.Rto);
            return;
        }
        Counters.Increment(Mib.TcpExtTCPTimeouts);
        if (WriteTimeout()) return;
        if (_retransmits == 0) CountRecoveryFailure();
        EnterLoss();
        _retransmits++;
        RetransmitHead();
        _backoff++;
        if (_state != TcpState.SynSent || _backoff > Sysctls.TcpSynLinearTimeouts) _rtt.Double();
        ArmRetransmit(_rtt.Rto);
    }

    /// <summary>The first timeout of an episode ends whatever recovery was under way: counted as its failure.</summary>
    private void CountRecoveryFailure()
    {
        Mib? failure = _caState switch
        {
            CongestionState.Recovery => SackOk ? Mib.TcpExtTCPSackRecoveryFail : Mib.TcpExtTCPRenoRecoveryFail,
            CongestionState.Loss => Mib.TcpExtTCPLossFailures,
            CongestionState.Disorder => SackOk ? Mib.TcpExtTCPSackFailures : Mib.TcpExtTCPRenoFailures,
            _ when _sackedOut > 0 => SackOk ? Mib.TcpExtTCPSackFailures : Mib.TcpExtTCPRenoFailures,
            _ => null,
        };
        if (failure is { } mib) Counters.Increment(mib);
    }

    /// <summary>tcp_rtx_probe0_timed_out: nothing heard for 2 × tcp_rto_max while retransmitting into a zero window.</summary>
    private bool ZeroWindowRetransmitTimedOut()
    {
        TimeSpan limit = Sysctls.TcpRtoMax * 2;
        if (_retransmitTimer.Deadline - _rcvTstamp <= limit) return false;
        Instant since = _retransStamp ?? _sent.First.FirstSent;
        return Now - since > limit;
    }

    /// <summary>
    /// tcp_write_timeout: SYN_SENT and SYN_RECV count retries (tcp_syn_retries plus
    /// tcp_syn_linear_timeouts); later states spend a time budget derived from tcp_retries2
    /// (retransmits_timed_out), and orphans from tcp_orphan_retries. Either way, a budget
    /// computed from the retry count caps the wait. Returns true when the connection died.
    /// </summary>
    private bool WriteTimeout()
    {
        bool expired = false;
        int retryUntil;
        TimeSpan rtoBase;
        if (_state is TcpState.SynSent or TcpState.SynReceived)
        {
            retryUntil = Options.SynRetries ?? Sysctls.TcpSynRetries;
            int maxRetransmits = retryUntil + (_state == TcpState.SynSent ? Sysctls.TcpSynLinearTimeouts : 0);
            expired = _retransmits >= maxRetransmits;
            rtoBase = RttEstimator.InitialRto;
        }
        else
        {
            // Past tcp_retries1 Linux gives the network layer "negative advice" (and probes the
            // path MTU if tcp_mtu_probing is on, off by default). ipv4_negative_advice() drops a
            // cached route only if it is obsolete, redirected or expiring; the lab's on-link and
            // gateway routes are none of those, so crossing tcp_retries1 changes nothing here,
            // as on a plain Linux LAN. The connection lives on until tcp_retries2.
            rtoBase = Sysctls.TcpRtoMin;
            retryUntil = Sysctls.TcpRetries2;
            if (_orphaned)
            {
                bool alive = _rtt.Rto < Sysctls.TcpRtoMax;
                retryUntil = OrphanRetries(alive);
            }
        }
        if (!expired) expired = RetransmitsTimedOut(retryUntil, rtoBase);
        if (!expired) return false;
        WriteError();
        return true;
    }

    /// <summary>tcp_orphan_retries: 0 in the sysctl means 8 while the RTO is not maxed out.</summary>
    private int OrphanRetries(bool alive)
    {
        int retries = Sysctls.TcpOrphanRetries;
        if (_softError != Errno.None && !alive) retries = 0;
        if (retries == 0 && alive) retries = 8;
        return retries;
    }

    /// <summary>
    /// retransmits_timed_out: the time <paramref name="boundary"/> retransmissions would take
    /// with exponential backoff from <paramref name="rtoBase"/> (capped at tcp_rto_max) has
    /// passed since the first retransmitted data was sent. For tcp_retries2 = 15 and 200 ms
    /// that is 924.6 s (tcp_model_timeout).
    /// </summary>
    private bool RetransmitsTimedOut(int boundary, TimeSpan rtoBase)
    {
        if (_retransmits == 0 || _retransStamp is not { } start) return false;
        return Now - start >= ModelTimeout(boundary, rtoBase, Sysctls.TcpRtoMax);
    }

    /// <summary>tcp_model_timeout.</summary>
    internal static TimeSpan ModelTimeout(int boundary, TimeSpan rtoBase, TimeSpan rtoMax)
    {
        int linearBackoffThreshold = BitOperations.Log2((ulong)(rtoMax.Ticks / rtoBase.Ticks));
        if (boundary <= linearBackoffThreshold)
            return TimeSpan.FromTicks(((2L << boundary) - 1) * rtoBase.Ticks);
        return TimeSpan.FromTicks(((2L << linearBackoffThreshold) - 1) * rtoBase.Ticks
                                  + (boundary - linearBackoffThreshold) * rtoMax.Ticks);
    }

    /// <summary>tcp_write_err: the connection dies with the soft error it saw, or ETIMEDOUT.</summary>
    private void WriteError()
    {
        Counters.Increment(Mib.TcpExtTCPAbortOnTimeout);
        _sent.Clear();
        Done(_softError != Errno.None ? _softError : Errno.ETIMEDOUT);
    }

    /// <summary>tcp_retransmit_skb for the oldest segment in flight.</summary>
    private void RetransmitHead()
    {
        ref SentSegment head = ref _sent.First;
        PacketCause cause = head.Syn
            ? new PacketCause(CauseCode.TcpSynRetransmit, _retransmits, (Options.SynRetries ?? Sysctls.TcpSynRetries) + Sysctls.TcpSynLinearTimeouts, (long)_rtt.Rto.TotalMilliseconds)
            : head.Fin && head.Length == 0
                ? new PacketCause(CauseCode.TcpFinRetransmit, _retransmits, 0, (long)_rtt.Rto.TotalMilliseconds)
                : new PacketCause(CauseCode.TcpDataRetransmitRto, _retransmits, 0, (long)_rtt.Rto.TotalMilliseconds);
        Retransmit(ref head, cause);
    }

    // ----- Persist (zero-window probes) -----

    /// <summary>tcp_probe0_base: the RTO, at least tcp_rto_min.</summary>
    private TimeSpan ProbeBase => _rtt.Rto < Sysctls.TcpRtoMin ? Sysctls.TcpRtoMin : _rtt.Rto;

    /// <summary>tcp_probe0_when: the base doubled per unanswered probe, capped at tcp_rto_max.</summary>
    private TimeSpan PersistTimeout()
    {
        int maxBackoff = BitOperations.Log2((ulong)(Sysctls.TcpRtoMax.Ticks / Sysctls.TcpRtoMin.Ticks)) + 1;
        return RttEstimator.Backoff(ProbeBase, Math.Min(_backoff, maxBackoff), Sysctls.TcpRtoMax);
    }

    private void ArmPersistTimer() => ArmPending(PendingTimer.Probe0, ProbeBase);

    /// <summary>tcp_probe_timer: probe a zero window until tcp_retries2 probes go unanswered.</summary>
    private void ProbeTimer()
    {
        bool unsent = DataEnd > SndNxt || (_finQueued && SndNxt < WriteSeq);
        if (PacketsOut > 0 || !unsent)
        {
            _probesOut = 0;
            _probesStamp = null;
            return;
        }
        _probesStamp ??= Now;
        int maxProbes = Sysctls.TcpRetries2;
        if (_orphaned)
        {
            bool alive = RttEstimator.Backoff(_rtt.Rto, _backoff, Sysctls.TcpRtoMax) < Sysctls.TcpRtoMax;
            maxProbes = OrphanRetries(alive);
            if (!alive && _backoff >= maxProbes)
            {
                WriteError();
                return;
            }
        }
        if (_probesOut >= maxProbes)
        {
            WriteError();
            return;
        }
        SendZeroWindowProbe();
    }

    /// <summary>tcp_send_probe0.</summary>
    private void SendZeroWindowProbe()
    {
        Counters.Increment(Mib.TcpExtTCPWinProbe);
        bool sent = SendProbe(new PacketCause(CauseCode.TcpZeroWindowProbe, _probesOut + 1, 0, (long)PersistTimeout().TotalMilliseconds));
        bool unsent = DataEnd > SndNxt || (_finQueued && SndNxt < WriteSeq);
        if (PacketsOut > 0 || !unsent)
        {
            // The window opened enough for real data: the RTO takes over.
            _probesOut = 0;
            _backoff = 0;
            _probesStamp = null;
            return;
        }
        _probesOut++;
        TimeSpan timeout;
        if (sent)
        {
            if (_backoff < Sysctls.TcpRetries2) _backoff++;
            timeout = PersistTimeout();
        }
        else
        {
            timeout = ResourceProbeInterval;
        }
        ArmPending(PendingTimer.Probe0, timeout);
    }

    // ----- Delayed ACK -----

    /// <summary>tcp_delack_timer_handler: send the owed ACK; outside interactive mode, double ato for next time.</summary>
    private void OnDelayedAckTimer()
    {
        if (_state is TcpState.Closed or TcpState.Listen || !_ackState.TimerArmed) return;
        _ackState.TimerArmed = false;
        if (!_ackState.Scheduled) return;
        TimeSpan ato = _ackState.Ato;
        if (!InPingpongMode)
        {
            TimeSpan doubled = ato * 2;
            _ackState.Ato = doubled < _rtt.Rto ? doubled : _rtt.Rto;
        }
        else
        {
            // Delayed ACK fired while interactive: the peer is not answering quickly; leave ping-pong mode.
            _ackState.Pingpong = 0;
            _ackState.Ato = AtoMin;
        }
        Counters.Increment(Mib.TcpExtDelayedACKs);
        SendAck(new PacketCause(CauseCode.TcpDelayedAck, 0, 0, (long)ato.TotalMilliseconds));
    }

    // ----- Keepalive and orphaned FIN_WAIT_2 (tcp_keepalive_timer) -----

    private void ArmKeepalive(TimeSpan delay) => _keepaliveTimer.Arm(_tcp.Deadline(delay));

    private void OnKeepaliveTimer()
    {
        if (_state == TcpState.FinWait2 && _orphaned)
        {
            if (Options.Linger2 is not { } linger2 || linger2 >= TimeSpan.Zero)
            {
                TimeSpan remaining = FinTimeout - TimeWaitSocket.TimeWaitLength;
                if (remaining > TimeSpan.Zero)
                {
                    EnterTimeWait(TcpState.FinWait2, remaining);
                    return;
                }
            }
            SendActiveReset(CauseCode.TcpRstTimeout);
            Done();
            return;
        }
        if (!Options.KeepAlive || _state is TcpState.Closed or TcpState.SynSent) return;

        TimeSpan next = KeepaliveTime;
        bool busy = PacketsOut > 0 || DataEnd > SndNxt;
        if (!busy)
        {
            // Idle since the later of the last data and the last ACK (keepalive_time_elapsed).
            TimeSpan idle = Now - Instant.Max(_ackState.LastReceive, _rcvTstamp);
            if (idle >= KeepaliveTime)
            {
                if (_probesOut >= KeepaliveProbes)
                {
                    SendActiveReset(CauseCode.TcpRstTimeout);
                    WriteError();
                    return;
                }
                Counters.Increment(Mib.TcpExtTCPKeepAlive);
                if (SendProbe(new PacketCause(CauseCode.TcpKeepaliveProbe, _probesOut + 1, KeepaliveProbes)))
                {
                    _probesOut++;
                    next = KeepaliveInterval;
                }
                else
                {
                    next = ResourceProbeInterval;
                }
            }
            else
            {
                next = KeepaliveTime - idle;
            }
        }
        ArmKeepalive(next);
    }
}
