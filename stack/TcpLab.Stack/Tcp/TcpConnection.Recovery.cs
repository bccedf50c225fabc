using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp.Congestion;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// Loss recovery, after tcp_input.c, tcp_recovery.c and the retransmission half of tcp_output.c:
/// the SACK scoreboard (tcp_sacktag_write_queue), the congestion state machine
/// (tcp_fastretrans_alert: Open, Disorder, CWR, Recovery, Loss), loss detection by RACK
/// (RFC 8985) or, with tcp_recovery=0, by the duplicate-ACK threshold (RFC 6675) and NewReno
/// (RFC 6582) without SACK; F-RTO (RFC 5682) after an RTO; tail loss probes; undo of spurious
/// reductions on D-SACKs and timestamps; proportional rate reduction (RFC 6937) while cwnd is
/// reduced; and the congestion-control hooks (tcp_cong_control).
/// <para>
/// Each segment in flight is one packet (the lab does not use TSO), so every packet count
/// below is a count of <see cref="SentSegment"/>s, as Linux counts tcp_skb_pcount.
/// </para>
/// </summary>
public sealed partial class TcpConnection : ICongestionHost
{
    /// <summary>TCP_TIMEOUT_MIN_US: the smallest RACK or TLP timer margin.</summary>
    private static readonly TimeSpan TimeoutMin = TimeSpan.FromMilliseconds(2);
    /// <summary>TCP_RACK_RECOVERY_THRESH: recoveries an enlarged reordering window persists for.</summary>
    private const int RackRecoveryThreshold = 16;

    [Flags]
    private enum AckFlags
    {
        None = 0,
        Data = 1 << 0,              // FLAG_DATA: the segment carried data
        WindowUpdate = 1 << 1,      // FLAG_WIN_UPDATE
        DataAcked = 1 << 2,         // FLAG_DATA_ACKED: new data cumulatively acknowledged
        RetransDataAcked = 1 << 3,  // ... some of it had been retransmitted
        SynAcked = 1 << 4,
        DataSacked = 1 << 5,        // new SACK information
        Ece = 1 << 6,
        LostRetrans = 1 << 7,       // a retransmission was found lost
        OrigSackAcked = 1 << 8,     // never-retransmitted data below high_seq was (S)ACKed
        SndUnaAdvanced = 1 << 9,
        DsackingAck = 1 << 10,      // the ACK carried a valid D-SACK
        DsackTlp = 1 << 11,         // ... for the tail loss probe
        SackReneging = 1 << 12,     // snd_una landed on a SACKed segment
        SetXmitTimer = 1 << 13,     // re-arm the TLP or RTO timer
        AckMaybeDelayed = 1 << 14,

        Acked = DataAcked | SynAcked,
        NotDup = Data | WindowUpdate | Acked,
        CaAlert = DataSacked | Ece | DsackingAck,
        ForwardProgress = Acked | DataSacked,
    }

    /// <summary>What an ACK asks the sender to (re)send after cwnd is updated (REXMIT_*).</summary>
    private enum Rexmit { None, Lost, New }

    /// <summary>struct tcp_sacktag_state with the rate sample's fields this stack uses.</summary>
    private struct SackTagState
    {
        public AckFlags Flag;
        public SeqNum Reord;                 // lowest never-retransmitted sequence (S)ACKed out of order
        public Instant? FirstSackt, LastSackt;
        public int SackDelivered;
        // Rate sample (tcp_rate_skb_delivered): delivered count when the latest (S)ACKed packet was sent.
        public long PriorDelivered;
        public Instant PriorSent;
        public SeqNum PriorEnd;
        public TimeSpan? Rtt;                // rs->rtt_us: RTT of the last (S)ACKed packet
    }

    private CongestionControl _cc;
    private readonly CongestionWindow _window = new();
    private CongestionState _caState;

    // Scoreboard (tp->sacked_out, lost_out, retrans_out), delivery and loss counts.
    private int _sackedOut;
    private int _lostOut;
    private int _retransOut;
    private int _totalRetrans;
    private long _delivered;                 // tp->delivered
    private long _lost;                      // tp->lost
    private SeqNum _highestSackEnd;          // end of the highest SACKed segment (highest_sack)
    private SeqNum? _retransmitHint;         // retransmit_skb_hint: where tcp_xmit_retransmit_queue resumes
    private readonly (SeqNum Start, SeqNum End)[] _recvSackCache = new (SeqNum, SeqNum)[TcpOptions.MaxSackBlocks];
    private int _recvSackCacheCount;

    // Recovery episode.
    private SeqNum _highSeq;                 // snd_nxt when the episode began
    private SeqNum? _undoMarker;             // snd_una when it began, while an undo is possible
    private int _undoRetrans;                // retransmissions not yet proven spurious (-1: none)
    private int _reordering;                 // tp->reordering
    private int _reordSeen;
    private int _dsackDups;
    private bool _frto;
    private int _prrDelivered;
    private int _prrOut;
    private int _recoveryRetransmits;        // retransmissions in this episode, the first is "the" fast retransmit
    private SeqNum? _tlpHighSeq;
    private bool _tlpRetrans;

    // RACK (tp->rack).
    private Instant _rackSent;               // rack.mstamp: latest send time among delivered packets
    private SeqNum _rackEndSeq;
    private TimeSpan _rackRtt;
    private bool _rackAdvanced;
    private int _rackReoWndSteps = 1;
    private int _rackReoWndPersist;
    private bool _rackDsackSeen;
    private long _rackLastDelivered;

    private int LeftOut => _sackedOut + _lostOut;
    /// <summary>tcp_packets_in_flight: sent, minus what is known delivered or believed lost, plus what was re-sent.</summary>
    private int InFlight => PacketsOut - LeftOut + _retransOut;
    private bool IsRack => (Sysctls.TcpRecovery & 1) != 0;
    private bool InCwndReduction => _caState is CongestionState.Cwr or CongestionState.Recovery;

    /// <summary>tcp_highest_sack_seq.</summary>
    private SeqNum HighestSackSeq => _sackedOut == 0 || !SackOk ? SndUna : _highestSackEnd;

    /// <summary>tcp_current_ssthresh: ssthresh, or 3/4 of cwnd if higher, outside a reduction.</summary>
    private int CurrentSsthresh => InCwndReduction ? _window.Ssthresh : Math.Max(_window.Ssthresh, (_window.Cwnd >> 1) + (_window.Cwnd >> 2));

    // ----- ICongestionHost -----

    CongestionWindow ICongestionHost.Window => _window;
    CongestionState ICongestionHost.State => _caState;
    Instant ICongestionHost.Now => Now;
    int ICongestionHost.Hz => Sysctls.LabHz > 0 ? Sysctls.LabHz : 1000;
    Instant ICongestionHost.LastSendTime => _lastSendTime;
    Counters ICongestionHost.Counters => Counters;

    /// <summary>tcp_update_pacing_rate: 200% of cwnd × mss / srtt in slow start, 120% after.</summary>
    long ICongestionHost.PacingRate
    {
        get
        {
            if (!_rtt.HasSample) return 0;
            int ratio = _window.Cwnd < _window.Ssthresh / 2 ? 200 : 120;
            long rate = (long)_mssCache * ratio * 10_000 * Math.Max(_window.Cwnd, PacketsOut);
            return rate / Math.Max(1, (long)_rtt.SmoothedRtt.TotalMicroseconds);
        }
    }

    // ----- Observable state (`ss -i`, tests) -----

    /// <summary>The congestion-control algorithm (`ss -i` prints its name).</summary>
    public string CongestionAlgorithm => _cc.Name;
    public CongestionState CongestionState => _caState;
    public int CongestionWindow => _window.Cwnd;
    public int SlowStartThreshold => _window.Ssthresh;
    public int PacketsInFlight => InFlight;
    /// <summary>Segments sent and not cumulatively acknowledged (tcpi_unacked).</summary>
    public int PacketsOut => _sent.Count;
    public int SackedPackets => _sackedOut;
    public int LostPackets => _lostOut;
    public int RetransmittedPacketsOut => _retransOut;
    public int Reordering => _reordering;
    public int DsackDups => _dsackDups;

    /// <summary>setsockopt(TCP_CONGESTION): switch algorithm (tcp_set_congestion_control, tcp_reinit_congestion_control).</summary>
    public void SetCongestionControl(string name)
    {
        if (name == _cc.Name) return;
        _cc = CongestionControl.Create(name);
        Options.CongestionControl = name;
        if (_state is not (TcpState.Closed or TcpState.SynSent or TcpState.SynReceived)) _cc.Init(this);
    }

    private void SetCaState(CongestionState state)
    {
        _cc.SetState(this, state);
        _caState = state;
    }

    // ----- tcp_ack -----

    /// <summary>
    /// tcp_ack: processes the ACK field, the window and the SACK blocks. Returns 1 when
    /// acceptable, 0 for an old (duplicate-range) ACK, -1 for an ACK too old (RFC 5961 5.2)
    /// or of data never sent. Every ACK takes Linux's slow path here (there is no header prediction).
    /// </summary>
    private int ProcessAck(in Segment segment, bool updateTsRecent)
    {
        SeqNum ack = segment.Ack;
        SeqNum priorSndUna = SndUna;
        int priorPackets = PacketsOut;
        long priorDelivered = _delivered;
        long priorLost = _lost;
        var state = new SackTagState();
        AckFlags flag = AckFlags.None;
        Rexmit rexmit = Rexmit.None;
        bool hasSack = SackOk && segment.Header.Options.SackBlockCount > 0;

        if (ack < priorSndUna)
        {
            long maxWindow = Math.Min(MaxWindow, _bytesAcked);
            if (ack < priorSndUna - (int)maxWindow)
            {
                if (_state == TcpState.Established) SendChallengeAck();
                return -1;
            }
            // An old ACK can still carry new SACK information.
            if (updateTsRecent) ReplaceTsRecent(segment.Seq);
            if (hasSack)
            {
                flag |= SackTag(segment, priorSndUna, ref state);
                FastRetransAlert(priorSndUna, 0, ref flag, ref rexmit);
                NewlyDelivered(priorDelivered);
                XmitRecovery(rexmit);
            }
            return 0;
        }
        if (ack > SndNxt) return -1;
        if (ack > priorSndUna)
        {
            flag |= AckFlags.SndUnaAdvanced;
            _retransmits = 0;
        }
        SeqNum priorFack = SackOk ? HighestSackSeq : SndUna;
        if (updateTsRecent) ReplaceTsRecent(segment.Seq);

        if (segment.Seq != segment.EndSeq) flag |= AckFlags.Data;
        else Counters.Increment(Mib.TcpExtTCPPureAcks);
        if (UpdateWindow(segment, ack)) flag |= AckFlags.WindowUpdate;
        if (hasSack) flag |= SackTag(segment, priorSndUna, ref state);
        if (state.SackDelivered > 0) _delivered += state.SackDelivered;

        _softError = Errno.None;
        _probesOut = 0;
        _rcvTstamp = Now;

        if (priorPackets == 0)
        {
            // Nothing was in flight: a window update (or D-SACK) only.
            if ((flag & AckFlags.DsackingAck) != 0)
            {
                FastRetransAlert(priorSndUna, 0, ref flag, ref rexmit);
                NewlyDelivered(priorDelivered);
            }
            AckProbe();
            if (_tlpHighSeq is not null) ProcessTlpAck(ack, flag);
            return 1;
        }

        flag |= CleanRetransmitQueue(priorFack, priorSndUna, ref state);
        RackUpdateReorderWindow(state);
        if (_tlpHighSeq is not null) ProcessTlpAck(ack, flag);

        if (AckIsDubious(flag))
        {
            int dupAcks = (flag & (AckFlags.SndUnaAdvanced | AckFlags.NotDup | AckFlags.DsackingAck)) == 0 ? 1 : 0;
            FastRetransAlert(priorSndUna, dupAcks, ref flag, ref rexmit);
        }
        if ((flag & AckFlags.SetXmitTimer) != 0) SetXmitTimer();
        if (((flag & AckFlags.ForwardProgress) != 0 || (flag & AckFlags.NotDup) == 0)
            && _tcp.Stack.Ip.TryRoute(Tuple.RemoteAddress, out var networkInterface, out var nextHop))
            networkInterface.Neighbours.Confirm(nextHop);   // sk_dst_confirm: the peer is evidently reachable
        int delivered = NewlyDelivered(priorDelivered);
        CongestionControlOnAck(ack, delivered, (int)(_lost - priorLost), flag);
        XmitRecovery(rexmit);
        return 1;
    }

    /// <summary>tcp_ack_is_dubious: anything but a plain forward ACK in Open state needs the state machine.</summary>
    private bool AckIsDubious(AckFlags flag) =>
        (flag & AckFlags.NotDup) == 0 || (flag & AckFlags.CaAlert) != 0 || _caState != CongestionState.Open;

    /// <summary>tcp_newly_delivered: packets newly (S)ACKed by this ACK, counted as TCPDelivered.</summary>
    private int NewlyDelivered(long priorDelivered)
    {
        int delivered = (int)(_delivered - priorDelivered);
        Counters.Increment(Mib.TcpExtTCPDelivered, delivered);
        return delivered;
    }

    /// <summary>tcp_cong_control: reduce cwnd while recovering (PRR), else let the algorithm grow it.</summary>
    private void CongestionControlOnAck(SeqNum ack, int ackedSacked, int newlyLost, AckFlags flag)
    {
        if (InCwndReduction)
        {
            CwndReduction(ackedSacked, newlyLost, flag);
        }
        else if (MayRaiseCwnd(flag))
        {
            _cc.CongestionAvoidance(this, ack, ackedSacked);
            _window.Stamp = Now;
        }
    }

    /// <summary>tcp_may_raise_cwnd: on in-order delivery only, unless the path is known to reorder.</summary>
    private bool MayRaiseCwnd(AckFlags flag) =>
        _reordering > Sysctls.TcpReordering ? (flag & AckFlags.ForwardProgress) != 0 : (flag & AckFlags.DataAcked) != 0;

    /// <summary>
    /// tcp_clean_rtx_queue: drops fully acknowledged segments (trimming a partly acknowledged
    /// head's bytes, which Linux does at its next retransmission), counts what was delivered,
    /// and measures RTT from the oldest newly acknowledged segment unless any was retransmitted (Karn).
    /// </summary>
    private AckFlags CleanRetransmitQueue(SeqNum priorFack, SeqNum priorSndUna, ref SackTagState state)
    {
        AckFlags flag = AckFlags.None;
        int priorSacked = _sackedOut;
        SeqNum reord = SndNxt;
        Instant? firstAcked = null;
        Instant lastAcked = default;
        int packetsAcked = 0;
        int freedBytes = 0;
        SeqNum ack = SndUna;
        while (_sent.Count > 0)
        {
            ref SentSegment head = ref _sent.First;
            if (head.End > ack)
            {
                if (head.Start < ack && !head.Syn)
                {
                    freedBytes += ack - head.Start;
                    head.Start = ack;
                }
                break;
            }
            if (head.EverRetransmitted)
            {
                if (head.Retransmitting) _retransOut--;
                flag |= AckFlags.RetransDataAcked;
            }
            else if (!head.Sacked)
            {
                lastAcked = head.LastSent;
                firstAcked ??= lastAcked;
                if (head.Start < reord) reord = head.Start;
                if (head.End <= _highSeq) flag |= AckFlags.OrigSackAcked;
            }
            if (head.Sacked)
            {
                _sackedOut--;
            }
            else
            {
                if (SackOk)
                {
                    _delivered++;
                    if (!SpuriousRetransmission(head)) RackAdvance(head.EverRetransmitted, head.End, head.LastSent);
                }
                RateDelivered(head, ref state);
            }
            if (head.Lost) _lostOut--;
            packetsAcked++;
            if (head.Syn)
            {
                flag |= AckFlags.SynAcked;
                _retransStamp = null;
            }
            else
            {
                flag |= AckFlags.DataAcked;
            }
            freedBytes += head.Length;
            _sent.RemoveFirst();
        }
        if (freedBytes > 0) _sendBuffer.Consume(freedBytes);
        if (_sent.Count > 0 && _sent.First.Sacked) flag |= AckFlags.SackReneging;

        TimeSpan? seqRtt = null, caRtt = null, sackRtt = null;
        if (firstAcked is { } first && (flag & AckFlags.RetransDataAcked) == 0)
        {
            seqRtt = Now - first;
            caRtt = Now - lastAcked;
            if (packetsAcked == 1 && priorSacked == 0 && SndUna - priorSndUna < _mssCache
                && state.PriorDelivered + 1 == _delivered && (flag & (AckFlags.CaAlert | AckFlags.SynAcked)) == 0)
                flag |= AckFlags.AckMaybeDelayed;   // a lone runt packet: probably a delayed ACK
        }
        if (state.FirstSackt is { } firstSackt)
        {
            sackRtt = Now - firstSackt;
            caRtt = Now - state.LastSackt!.Value;
        }
        bool rttUpdated = AckUpdateRtt(flag, seqRtt, sackRtt, caRtt, ref state);

        if ((flag & AckFlags.Acked) != 0)
        {
            flag |= AckFlags.SetXmitTimer;
            if (!SackOk)
            {
                RemoveRenoSacks(packetsAcked);
                // Without SACK bits, progress cannot be credited to an original transmission.
                if ((flag & AckFlags.RetransDataAcked) != 0) flag &= ~AckFlags.OrigSackAcked;
            }
            else if (reord < priorFack)
            {
                // A never-retransmitted hole was filled: reordering.
                CheckSackReordering(reord, timestamps: false);
            }
        }
        else if (_sent.Count > 0 && rttUpdated && sackRtt is { } s && s > Now - _sent.First.LastSent)
        {
            // Re-arm only if the SACK RTT comes from data sent after the head was last sent.
            flag |= AckFlags.SetXmitTimer;
        }
        _cc.PacketsAcked(this, packetsAcked, state.Rtt);
        return flag;
    }

    /// <summary>tcp_ack_update_rtt: an RTT sample from the ACKed data, else the SACKed data, else the echoed timestamp.</summary>
    private bool AckUpdateRtt(AckFlags flag, TimeSpan? seqRtt, TimeSpan? sackRtt, TimeSpan? caRtt, ref SackTagState state)
    {
        seqRtt ??= sackRtt;
        if (seqRtt is null && _sawTimestamp && _rcvTsEcr != 0 && (flag & AckFlags.Acked) != 0)
            seqRtt = caRtt = TimestampRtt();
        state.Rtt = caRtt;
        if (seqRtt is not { } sample) return false;
        // tcp_update_rtt_min: a suspected delayed ACK does not raise the minimum.
        if ((flag & AckFlags.AckMaybeDelayed) == 0 || caRtt < _rtt.MinRtt) _rtt.ObserveMinRtt(caRtt!.Value);
        _rtt.AddSample(sample, SndUna, SndNxt);
        _backoff = 0;   // RFC 6298: only a valid RTT sample resets the backoff
        return true;
    }

    /// <summary>tcp_rate_skb_delivered: remember the delivered count when the latest (S)ACKed packet was sent.</summary>
    private static void RateDelivered(in SentSegment segment, ref SackTagState state)
    {
        if (state.PriorDelivered == 0 || SentAfter(segment.LastSent, state.PriorSent, segment.End, state.PriorEnd))
        {
            state.PriorDelivered = segment.DeliveredAtSend;
            state.PriorSent = segment.LastSent;
            state.PriorEnd = segment.End;
        }
    }

    /// <summary>tcp_skb_sent_after: t1 after t2, ties broken by sequence.</summary>
    private static bool SentAfter(Instant t1, Instant t2, SeqNum seq1, SeqNum seq2) => t1 > t2 || (t1 == t2 && seq1 > seq2);

    /// <summary>tcp_tsopt_ecr_before: the ACK echoes a timestamp we sent before <paramref name="when"/>.</summary>
    private bool EchoedBefore(Instant when) =>
        _sawTimestamp && _rcvTsEcr != 0 && new SeqNum(unchecked(_rcvTsEcr - TsOffset)) < new SeqNum(TcpLayer.TimestampAt(when));

    /// <summary>tcp_skb_spurious_retrans: the ACK echoes the original transmission of a retransmitted segment.</summary>
    private bool SpuriousRetransmission(in SentSegment segment) => segment.EverRetransmitted && EchoedBefore(segment.LastSent);

    // ----- The state machine (tcp_fastretrans_alert) -----

    /// <summary>
    /// tcp_fastretrans_alert: for every dubious ACK, leave a state whose episode is over, try to
    /// undo a reduction that proved spurious, find lost segments, and enter Recovery when loss
    /// is evident. Sets <paramref name="rexmit"/> when lost segments should be retransmitted.
    /// </summary>
    private void FastRetransAlert(SeqNum priorSndUna, int dupAcks, ref AckFlags flag, ref Rexmit rexmit)
    {
        bool fastRetransmit = false;
        bool doLost = dupAcks > 0 || ((flag & AckFlags.DataSacked) != 0 && ForceFastRetransmit());
        if (PacketsOut == 0 && _sackedOut > 0) _sackedOut = 0;

        // In all states, check for SACK reneging.
        if (CheckSackReneging(ref flag)) return;

        // Leave a state whose episode is over: high_seq is acknowledged.
        if (_caState == CongestionState.Open)
        {
            _retransStamp = null;
        }
        else if (SndUna >= _highSeq)
        {
            switch (_caState)
            {
                case CongestionState.Cwr:
                    // Held until something above high_seq is acknowledged.
                    if (SndUna != _highSeq)
                    {
                        EndCwndReduction();
                        SetCaState(CongestionState.Open);
                    }
                    break;
                case CongestionState.Recovery:
                    if (!SackOk) _sackedOut = 0;
                    if (TryUndoRecovery()) return;
                    EndCwndReduction();
                    break;
            }
        }

        switch (_caState)
        {
            case CongestionState.Recovery:
                if ((flag & AckFlags.SndUnaAdvanced) == 0)
                {
                    if (!SackOk) AddRenoSack(dupAcks);
                }
                else if (TryUndoPartial(priorSndUna, ref doLost))
                {
                    return;
                }
                if (TryUndoDsack()) TryToOpen(flag);
                IdentifyPacketLoss(ref flag);
                if (_caState != CongestionState.Recovery)
                {
                    if (!TimeToRecover()) return;
                    // Undone, but loss is evident: a new recovery (e.g. reordering, then loss).
                    EnterRecovery();
                }
                break;

            case CongestionState.Loss:
                ProcessLoss(flag, dupAcks, ref rexmit);
                IdentifyPacketLoss(ref flag);
                if (!(_caState == CongestionState.Open || (flag & AckFlags.LostRetrans) != 0)) return;
                // Undone, or a retransmission was lost: re-evaluate as from Open.
                goto default;

            default:
                if (!SackOk)
                {
                    if ((flag & AckFlags.SndUnaAdvanced) != 0) _sackedOut = 0;
                    AddRenoSack(dupAcks);
                }
                if (_caState <= CongestionState.Disorder) TryUndoDsack();
                IdentifyPacketLoss(ref flag);
                if (!TimeToRecover())
                {
                    TryToOpen(flag);
                    return;
                }
                EnterRecovery();
                fastRetransmit = true;
                break;
        }

        if (!IsRack && doLost) UpdateScoreboard(fastRetransmit);
        rexmit = Rexmit.Lost;
    }

    /// <summary>
    /// tcp_check_sack_reneging: snd_una landed on a SACKed segment, so the receiver dropped data
    /// it had SACKed. Give it max(srtt/2, 10 ms) to recover before an RTO clears the scoreboard.
    /// </summary>
    private bool CheckSackReneging(ref AckFlags flag)
    {
        if ((flag & AckFlags.SackReneging) == 0 || (flag & AckFlags.SndUnaAdvanced) == 0) return false;
        TimeSpan delay = _rtt.SmoothedRtt / 2;
        if (delay < TimeSpan.FromMilliseconds(10)) delay = TimeSpan.FromMilliseconds(10);
        ArmPending(PendingTimer.Retransmit, delay);
        flag &= ~AckFlags.SetXmitTimer;
        return true;
    }

    /// <summary>tcp_enter_recovery: fast recovery begins; cwnd will follow PRR down to ssthresh.</summary>
    private void EnterRecovery()
    {
        // The clock for undo and ETIMEDOUT starts with our fast retransmit.
        if (!AnyRetransDone()) _retransStamp = null;
        Counters.Increment(SackOk ? Mib.TcpExtTCPSackRecovery : Mib.TcpExtTCPRenoRecovery);
        _window.PriorSsthresh = 0;
        InitUndo();
        if (!InCwndReduction)
        {
            _window.PriorSsthresh = CurrentSsthresh;
            InitCwndReduction();
        }
        SetCaState(CongestionState.Recovery);
        _recoveryRetransmits = 0;
    }

    /// <summary>tcp_init_cwnd_reduction: ssthresh from the algorithm, PRR counters reset.</summary>
    private void InitCwndReduction()
    {
        _highSeq = SndNxt;
        _tlpHighSeq = null;
        _window.Count = 0;
        _window.PriorCwnd = _window.Cwnd;
        _prrDelivered = 0;
        _prrOut = 0;
        _window.Ssthresh = _cc.Ssthresh(this);
    }

    /// <summary>
    /// tcp_cwnd_reduction, Proportional Rate Reduction (RFC 6937): while more than ssthresh is
    /// in flight, send in proportion ssthresh/prior_cwnd of what is delivered; below it, as much
    /// as was delivered (slow-starting back up to ssthresh when snd_una advances).
    /// </summary>
    private void CwndReduction(int newlyAckedSacked, int newlyLost, AckFlags flag)
    {
        if (newlyAckedSacked <= 0 || _window.PriorCwnd == 0) return;
        int sendCount;
        int delta = _window.Ssthresh - InFlight;
        _prrDelivered += newlyAckedSacked;
        if (delta < 0)
        {
            long dividend = (long)_window.Ssthresh * _prrDelivered + _window.PriorCwnd - 1;
            sendCount = (int)(dividend / _window.PriorCwnd) - _prrOut;
        }
        else
        {
            sendCount = Math.Max(_prrDelivered - _prrOut, newlyAckedSacked);
            if ((flag & AckFlags.SndUnaAdvanced) != 0 && newlyLost == 0) sendCount++;
            sendCount = Math.Min(delta, sendCount);
        }
        // Force a fast retransmit upon entering fast recovery.
        sendCount = Math.Max(sendCount, _prrOut > 0 ? 0 : 1);
        _window.Cwnd = InFlight + sendCount;
    }

    /// <summary>tcp_end_cwnd_reduction: Recovery or CWR is over; cwnd settles at ssthresh (unless undone).</summary>
    private void EndCwndReduction()
    {
        if (_window.Ssthresh < Congestion.CongestionWindow.InfiniteSsthresh && (_caState == CongestionState.Cwr || _undoMarker is not null))
        {
            _window.Cwnd = _window.Ssthresh;
            _window.Stamp = Now;
        }
        _cc.CwndEvent(this, CongestionEvent.CompleteCwr);
    }

    /// <summary>tcp_enter_cwr: reduce cwnd without Recovery (no undo), e.g. when a loss probe repaired a loss.</summary>
    private void EnterCwr()
    {
        _window.PriorSsthresh = 0;
        if (_caState < CongestionState.Cwr)
        {
            _undoMarker = null;
            InitCwndReduction();
            SetCaState(CongestionState.Cwr);
        }
    }

    /// <summary>tcp_try_keep_open: Open, or Disorder while anything is SACKed, lost or retransmitted.</summary>
    private void TryKeepOpen()
    {
        CongestionState state = LeftOut > 0 || AnyRetransDone() ? CongestionState.Disorder : CongestionState.Open;
        if (_caState == state) return;
        SetCaState(state);
        _highSeq = SndNxt;
    }

    /// <summary>tcp_try_to_open.</summary>
    private void TryToOpen(AckFlags flag)
    {
        _ = flag;   // ECN echo would enter CWR here; the lab does not negotiate ECN
        if (!AnyRetransDone()) _retransStamp = null;
        if (_caState != CongestionState.Cwr) TryKeepOpen();
    }

    /// <summary>tcp_any_retrans_done.</summary>
    private bool AnyRetransDone() => _retransOut > 0 || (PacketsOut > 0 && _sent.First.EverRetransmitted);

    // ----- Loss state (RTO recovery and F-RTO) -----

    /// <summary>
    /// tcp_enter_loss after an RTO: everything in flight is presumed lost (except, with RACK,
    /// segments sent too recently to judge; all of it on SACK reneging), ssthresh is reduced once
    /// per episode, cwnd restarts from one segment, and F-RTO decides whether to test the RTO.
    /// </summary>
    private void EnterLoss()
    {
        bool newRecovery = _caState < CongestionState.Recovery;
        TimeoutMarkLost();
        if (_caState <= CongestionState.Disorder || _highSeq <= SndUna || (_caState == CongestionState.Loss && _retransmits == 0))
        {
            _window.PriorSsthresh = CurrentSsthresh;
            _window.PriorCwnd = _window.Cwnd;
            _window.Ssthresh = _cc.Ssthresh(this);
            _cc.CwndEvent(this, CongestionEvent.Loss);
            InitUndo();
        }
        _window.Cwnd = InFlight + 1;
        _window.Count = 0;
        _window.Stamp = Now;
        // A timeout after many duplicate ACKs: the reordering degree was overestimated.
        if (_caState <= CongestionState.Disorder && _sackedOut >= Sysctls.TcpReordering)
            _reordering = Math.Min(_reordering, Sysctls.TcpReordering);
        SetCaState(CongestionState.Loss);
        _highSeq = SndNxt;
        _tlpHighSeq = null;
        // F-RTO (RFC 5682 3.1 step 1), unless a recovery was already under way (bar repeated timeouts).
        _frto = Sysctls.TcpFrto != 0 && (newRecovery || _retransmits > 0);
    }

    /// <summary>tcp_timeout_mark_lost.</summary>
    private void TimeoutMarkLost()
    {
        bool reneged = PacketsOut > 0 && _sent.First.Sacked;
        if (reneged)
        {
            Counters.Increment(Mib.TcpExtTCPSACKReneging);
            _sackedOut = 0;
        }
        else if (!SackOk)
        {
            _sackedOut = 0;
        }
        for (int i = 0; i < _sent.Count; i++)
        {
            ref SentSegment segment = ref _sent[i];
            if (reneged) segment.Sacked = false;
            else if (IsRack && i > 0 && RackRemaining(segment, TimeSpan.Zero) > TimeSpan.Zero) continue;   // too recent to judge
            MarkLost(ref segment, LossDetection.Rto);
        }
        _retransmitHint = null;
    }

    /// <summary>
    /// tcp_process_loss: an ACK in Loss state. Undo if the RTO proves spurious (timestamps, or
    /// F-RTO: never-retransmitted data was (S)ACKed); F-RTO step 2b sends new data before
    /// retransmitting more; otherwise retransmit what is marked lost.
    /// </summary>
    private void ProcessLoss(AckFlags flag, int dupAcks, ref Rexmit rexmit)
    {
        bool recovered = SndUna >= _highSeq;
        if ((flag & AckFlags.SndUnaAdvanced) != 0 && TryUndoLoss(frtoUndo: false)) return;

        if (_frto)
        {
            // Step 3.b: the timeout was spurious if data never retransmitted is (S)ACKed.
            if ((flag & AckFlags.OrigSackAcked) != 0 && TryUndoLoss(frtoUndo: true)) return;
            if (SndNxt > _highSeq)
            {
                // Step 3.a: a duplicate ACK or SACK after new data: the loss was real.
                if ((flag & AckFlags.DataSacked) != 0 || dupAcks > 0) _frto = false;
            }
            else if ((flag & AckFlags.SndUnaAdvanced) != 0 && !recovered)
            {
                _highSeq = SndNxt;
                // Step 2.b: send new data (once cwnd is updated) if any fits; else conventional recovery.
                if (DataEnd > SndNxt && WindowEnd > SndNxt)
                {
                    rexmit = Rexmit.New;
                    return;
                }
                _frto = false;
            }
        }

        if (recovered)
        {
            // Step 2.a and the first part of 3.a.
            TryUndoRecovery();
            return;
        }
        if (!SackOk)
        {
            // A Reno duplicate ACK means the new data of step 2.b arrived: lower in-flight to clock out more.
            if (SndNxt > _highSeq && dupAcks > 0) AddRenoSack(dupAcks);
            else if ((flag & AckFlags.SndUnaAdvanced) != 0) _sackedOut = 0;
        }
        rexmit = Rexmit.Lost;
    }

    /// <summary>
    /// tcp_non_congestion_loss_retransmit: segments were lost for a reason other than congestion
    /// (Fast Open data the server did not take): Loss state without reducing cwnd, then retransmit.
    /// </summary>
    private void NonCongestionLossRetransmit()
    {
        if (_caState != CongestionState.Loss)
        {
            _highSeq = SndNxt;
            _window.Ssthresh = CurrentSsthresh;
            _window.PriorSsthresh = 0;
            _undoMarker = null;
            SetCaState(CongestionState.Loss);
        }
        XmitRetransmitQueue();
    }

    // ----- Undo (tcp_try_undo_*) -----

    /// <summary>tcp_init_undo: remember where the episode began; retransmissions in flight may prove it spurious later.</summary>
    private void InitUndo()
    {
        _undoMarker = SndUna;
        _undoRetrans = _retransOut;
        if (_tlpHighSeq is not null && _tlpRetrans) _undoRetrans++;
        if (_undoRetrans == 0) _undoRetrans = -1;   // 0 means "may undo now"
    }

    /// <summary>tcp_may_undo: every retransmission was D-SACKed, or the ACK echoes a timestamp from before the first one.</summary>
    private bool MayUndo() => _undoMarker is not null && (_undoRetrans == 0 || PacketDelayed());

    /// <summary>tcp_packet_delayed: nothing was retransmitted, or the echoed timestamp predates the first retransmission.</summary>
    private bool PacketDelayed()
    {
        if (_retransStamp is { } stamp) return EchoedBefore(stamp);
        if (!SackOk && SndUna >= _highSeq) return false;
        if (_state == TcpState.SynSent) return false;
        return true;
    }

    /// <summary>tcp_undo_cwnd_reduction: back to the cwnd and ssthresh before the episode.</summary>
    private void UndoCwndReduction(bool unmarkLoss)
    {
        if (unmarkLoss)
        {
            for (int i = 0; i < _sent.Count; i++) _sent[i].Lost = false;
            _lostOut = 0;
            _retransmitHint = null;
        }
        if (_window.PriorSsthresh != 0)
        {
            _window.Cwnd = _cc.UndoCwnd(this);
            if (_window.PriorSsthresh > _window.Ssthresh) _window.Ssthresh = _window.PriorSsthresh;
        }
        _window.Stamp = Now;
        _undoMarker = null;
        _rackAdvanced = true;   // make RACK look at the queue again
    }

    /// <summary>tcp_is_non_sack_preventing_reopen: without SACK, hold the state until something above high_seq is ACKed (RFC 6582).</summary>
    private bool NonSackPreventingReopen()
    {
        if (SndUna != _highSeq || SackOk) return false;
        if (!AnyRetransDone()) _retransStamp = null;
        return true;
    }

    /// <summary>tcp_try_undo_recovery: the episode ended; undo if it was spurious, then Open.</summary>
    private bool TryUndoRecovery()
    {
        if (MayUndo())
        {
            Counters.Increment(_caState == CongestionState.Loss ? Mib.TcpExtTCPLossUndo : Mib.TcpExtTCPFullUndo);
            UndoCwndReduction(unmarkLoss: false);
        }
        else if (_rackReoWndPersist > 0)
        {
            _rackReoWndPersist--;
        }
        if (NonSackPreventingReopen()) return true;
        SetCaState(CongestionState.Open);
        return false;
    }

    /// <summary>tcp_try_undo_dsack: D-SACKs accounted for every retransmission.</summary>
    private bool TryUndoDsack()
    {
        if (_undoMarker is null || _undoRetrans != 0) return false;
        _rackReoWndPersist = Math.Min(RackRecoveryThreshold, _rackReoWndPersist + 1);
        UndoCwndReduction(unmarkLoss: false);
        Counters.Increment(Mib.TcpExtTCPDSACKUndo);
        return true;
    }

    /// <summary>tcp_try_undo_loss: undo an RTO's reduction after a partial ACK (timestamps) or by F-RTO.</summary>
    private bool TryUndoLoss(bool frtoUndo)
    {
        if (!frtoUndo && !MayUndo()) return false;
        UndoCwndReduction(unmarkLoss: true);
        Counters.Increment(Mib.TcpExtTCPLossUndo);
        if (frtoUndo) Counters.Increment(Mib.TcpExtTCPSpuriousRTOs);
        _retransmits = 0;
        if (NonSackPreventingReopen()) return true;
        if (frtoUndo || SackOk) SetCaState(CongestionState.Open);
        return true;
    }

    /// <summary>tcp_try_undo_partial: a partial ACK in Recovery; undo if the hole was filled by a delayed original.</summary>
    private bool TryUndoPartial(SeqNum priorSndUna, ref bool doLost)
    {
        if (_undoMarker is not null && PacketDelayed())
        {
            // Plain luck: the hole was filled by a delayed packet, not a retransmission.
            CheckSackReordering(priorSndUna, timestamps: true);
            // Retransmissions still out: clock out new data, but mark and retransmit no more.
            if (_retransOut > 0) return true;
            if (!AnyRetransDone()) _retransStamp = null;
            UndoCwndReduction(unmarkLoss: true);
            Counters.Increment(Mib.TcpExtTCPPartialUndo);
            TryKeepOpen();
        }
        else
        {
            // A partial ACK: force the next fast retransmit.
            doLost = ForceFastRetransmit();
        }
        return false;
    }

    // ----- Retransmitting (tcp_xmit_retransmit_queue, tcp_retransmit_skb) -----

    /// <summary>tcp_xmit_recovery: after cwnd is updated, send F-RTO's new data or retransmit lost segments.</summary>
    private void XmitRecovery(Rexmit rexmit)
    {
        if (rexmit == Rexmit.None || _state == TcpState.SynSent) return;
        if (rexmit == Rexmit.New)
        {
            WriteXmit(nagle: false, CauseCode.TcpFrtoNewData);
            if (SndNxt > _highSeq) return;
            _frto = false;
        }
        XmitRetransmitQueue();
    }

    /// <summary>
    /// tcp_xmit_retransmit_queue: retransmit segments marked lost and not yet retransmitted,
    /// oldest first, while cwnd allows. Restarts the RTO if the head was among them.
    /// </summary>
    private void XmitRetransmitQueue()
    {
        if (PacketsOut == 0) return;
        bool rearm = false;
        bool holeFound = false;
        int start = _retransmitHint is { } hint ? _sent.IndexAfter(hint) : 0;
        for (int i = start; i < _sent.Count; i++)
        {
            ref SentSegment segment = ref _sent[i];
            if (!holeFound) _retransmitHint = segment.Start;
            if (_window.Cwnd - InFlight <= 0) break;
            if (_retransOut >= _lostOut) break;
            if (!segment.Lost)
            {
                if (!segment.Retransmitting && !segment.Sacked) holeFound = true;
                continue;
            }
            if (segment.Sacked || segment.Retransmitting) continue;
            if (!Retransmit(ref segment, RetransmitCause(segment))) break;
            Counters.Increment(_caState != CongestionState.Loss ? Mib.TcpExtTCPFastRetrans : Mib.TcpExtTCPSlowStartRetrans);
            _recoveryRetransmits++;
            if (InCwndReduction) _prrOut++;
            if (i == 0 && _pendingTimer != PendingTimer.ReorderTimeout) rearm = true;
        }
        if (rearm) ArmRetransmit(_rtt.Rto);
    }

    /// <summary>Why a lost segment is retransmitted now, as the trace words it.</summary>
    private PacketCause RetransmitCause(in SentSegment segment)
    {
        int bytes = segment.Length;
        return segment.LostBy switch
        {
            LossDetection.SynData => new PacketCause(CauseCode.TcpFastOpenRetransmit, bytes),
            _ when _caState == CongestionState.Loss => new PacketCause(CauseCode.TcpLossRetransmit, bytes),
            LossDetection.RackTimer => new PacketCause(CauseCode.TcpRackRetransmit, bytes),
            LossDetection.LostRetransmit => new PacketCause(CauseCode.TcpLostRetransmit, bytes),
            _ when _recoveryRetransmits == 0 => new PacketCause(CauseCode.TcpFastRetransmit, bytes, _sackedOut, segment.LostBy == LossDetection.Rack ? 1 : 0),
            LossDetection.NewReno => new PacketCause(CauseCode.TcpNewRenoRetransmit, bytes),
            _ => new PacketCause(CauseCode.TcpSackHoleRetransmit, bytes),
        };
    }

    /// <summary>
    /// tcp_retransmit_skb: sends a recorded segment again (not beyond the peer's window, except the
    /// head into a zero window, which serves as a probe) and updates its bits and the counters.
    /// </summary>
    private bool Retransmit(ref SentSegment segment, PacketCause cause)
    {
        if (!segment.Syn && segment.Start >= WindowEnd && segment.Start != SndUna) return false;
        Instant now = Now;
        segment.LastSent = now;
        if (segment.Syn)
        {
            TransmitSyn(cause);
            Counters.Increment(Mib.TcpExtTCPSynRetrans);
        }
        else
        {
            TransmitSegment(segment, cause, retransmission: true);
        }
        segment.EverRetransmitted = true;
        segment.DeliveredAtSend = _delivered;
        if (!segment.Retransmitting)
        {
            segment.Retransmitting = true;
            _retransOut++;
        }
        _retransStamp ??= now;   // the first retransmission anchors the retries budget and timestamp undo
        if (_undoRetrans < 0) _undoRetrans = 0;
        _undoRetrans++;
        _totalRetrans++;
        return true;
    }

    // ----- cwnd validation and restart after idle (RFC 2861, RFC 7661) -----

    /// <summary>tcp_cwnd_validate: track whether cwnd limits the sender; decay an unused cwnd.</summary>
    private void CwndValidate(bool isCwndLimited)
    {
        CongestionWindow w = _window;
        if (SndUna >= w.UsageSeq || isCwndLimited || (!w.IsCwndLimited && PacketsOut > w.MaxPacketsOut))
        {
            w.IsCwndLimited = isCwndLimited;
            w.MaxPacketsOut = PacketsOut;
            w.UsageSeq = SndNxt;
        }
        if (w.IsLimited)
        {
            w.Used = 0;
            w.Stamp = Now;
            return;
        }
        if (PacketsOut > w.Used) w.Used = PacketsOut;
        if (Sysctls.TcpSlowStartAfterIdle && Now - w.Stamp >= _rtt.Rto) CwndApplicationLimited();
    }

    /// <summary>tcp_cwnd_application_limited: an RTO without using cwnd fully halves the unused part.</summary>
    private void CwndApplicationLimited()
    {
        CongestionWindow w = _window;
        if (_caState == CongestionState.Open && !_sendBufferFull)
        {
            int used = Math.Max(w.Used, InitialCwnd);
            if (used < w.Cwnd)
            {
                w.Ssthresh = CurrentSsthresh;
                w.Cwnd = (w.Cwnd + used) >> 1;
            }
            w.Used = 0;
        }
        w.Stamp = Now;
    }

    /// <summary>
    /// tcp_slow_start_after_idle_check + tcp_cwnd_restart: new data after an idle period longer
    /// than the RTO starts from the restart window, halving cwnd per RTO idle (RFC 2861).
    /// </summary>
    private void SlowStartAfterIdleCheck()
    {
        if (!Sysctls.TcpSlowStartAfterIdle || PacketsOut > 0) return;
        TimeSpan idle = Now - _lastSendTime;
        TimeSpan rto = _rtt.Rto;
        if (idle <= rto) return;
        _cc.CwndEvent(this, CongestionEvent.CwndRestart);
        _window.Ssthresh = CurrentSsthresh;
        int restart = Math.Min(InitialCwnd, _window.Cwnd);
        int cwnd = _window.Cwnd;
        while ((idle -= rto) > TimeSpan.Zero && cwnd > restart) cwnd >>= 1;
        _window.Cwnd = Math.Max(cwnd, restart);
        _window.Stamp = Now;
        _window.Used = 0;
    }
}
