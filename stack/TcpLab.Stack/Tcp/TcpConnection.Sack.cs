using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp.Congestion;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The sender's SACK scoreboard (tcp_sacktag_write_queue and friends in tcp_input.c): which
/// segments the receiver holds, which are believed lost, D-SACKs and what they prove, the
/// reordering degree, and the duplicate-ACK counting that stands in for SACK when it is off.
/// </summary>
public sealed partial class TcpConnection
{
    // ----- SACK scoreboard (tcp_sacktag_write_queue) -----

    /// <summary>
    /// tcp_sacktag_write_queue: validates the SACK blocks (the first may be a D-SACK), walks the
    /// segments they cover and tags them SACKed (skipping what the previous ACK's blocks already
    /// covered, as recv_sack_cache does), then checks for reordering.
    /// </summary>
    private AckFlags SackTag(in Segment segment, SeqNum priorSndUna, ref SackTagState state)
    {
        ReadOnlySpan<SackBlock> wire = segment.Header.Options.Sacks;
        state.Flag = AckFlags.None;
        state.Reord = SndNxt;
        if (_sackedOut == 0) _highestSackEnd = SndUna;

        bool foundDupSack = CheckDsack(wire, segment.Ack, priorSndUna, ref state);
        if (segment.Ack < priorSndUna - MaxWindow) return AckFlags.None;   // too old
        if (PacketsOut == 0) return state.Flag;

        Span<(SeqNum Start, SeqNum End, bool Dup)> blocks = stackalloc (SeqNum, SeqNum, bool)[TcpOptions.MaxSackBlocks];
        int used = 0;
        for (int i = 0; i < wire.Length; i++)
        {
            bool dup = i == 0 && foundDupSack;
            SeqNum start = new(wire[i].Left), end = new(wire[i].Right);
            if (!IsSackBlockValid(dup, start, end))
            {
                if (dup)
                {
                    Counters.Increment(_undoMarker is null ? Mib.TcpExtTCPDSACKIgnoredNoUndo : Mib.TcpExtTCPDSACKIgnoredOld);
                }
                else
                {
                    // Blocks made old by ACK reordering are not worth counting.
                    if (segment.Ack != SndUna && end <= SndUna) continue;
                    Counters.Increment(Mib.TcpExtTCPSACKDiscard);
                }
                continue;
            }
            if (end <= priorSndUna) continue;   // ignore very old stuff early
            blocks[used++] = (start, end, dup);
        }
        // Walk the queue once, in sequence order.
        for (int i = 1; i < used; i++)
            for (int j = i; j > 0 && blocks[j - 1].Start > blocks[j].Start; j--)
                (blocks[j - 1], blocks[j]) = (blocks[j], blocks[j - 1]);

        bool useCache = _sackedOut > 0;
        for (int i = 0; i < used; i++)
        {
            var (start, end, dup) = blocks[i];
            if (dup || !useCache)
            {
                SackWalk(start, end, dup, ref state);
                continue;
            }
            // Only the parts the previous ACK's blocks did not cover are news.
            SeqNum from = start;
            for (int c = 0; c < _recvSackCacheCount && from < end; c++)
            {
                var (cacheStart, cacheEnd) = _recvSackCache[c];
                if (cacheEnd <= from || cacheStart >= end) continue;
                if (cacheStart > from) SackWalk(from, cacheStart, false, ref state);
                from = SeqNum.Max(from, cacheEnd);
            }
            if (from < end) SackWalk(from, end, false, ref state);
        }
        _recvSackCacheCount = used;
        for (int i = 0; i < used; i++) _recvSackCache[i] = (blocks[i].Start, blocks[i].End);

        if (_caState != CongestionState.Loss || _undoMarker is not null) CheckSackReordering(state.Reord, timestamps: false);
        return state.Flag;
    }

    /// <summary>tcp_sacktag_walk: tags every segment lying wholly inside [start, end).</summary>
    private void SackWalk(SeqNum start, SeqNum end, bool dupSack, ref SackTagState state)
    {
        for (int i = _sent.IndexAfter(start); i < _sent.Count; i++)
        {
            ref SentSegment segment = ref _sent[i];
            if (segment.Start >= end) break;
            if (segment.Start < start || segment.End > end) continue;
            SackTagOne(ref segment, ref state, dupSack);
            if (segment.Sacked && segment.Start >= HighestSackSeq) _highestSackEnd = segment.End;   // tcp_advance_highest_sack
        }
    }

    /// <summary>tcp_sacktag_one: one segment the receiver holds; the scoreboard counters follow its bits.</summary>
    private void SackTagOne(ref SentSegment segment, ref SackTagState state, bool dupSack)
    {
        // A D-SACK for a retransmitted segment: one retransmission was unnecessary.
        if (dupSack && segment.EverRetransmitted)
        {
            if (_undoMarker is { } marker && _undoRetrans > 0 && segment.End > marker) _undoRetrans = Math.Max(0, _undoRetrans - 1);
            if (segment.Sacked && segment.Start < state.Reord) state.Reord = segment.Start;
        }
        if (segment.End <= SndUna) return;

        if (!segment.Sacked)
        {
            RackAdvance(segment.EverRetransmitted, segment.End, segment.LastSent);
            if (segment.Retransmitting)
            {
                // Lost and retransmitted: the retransmission arrived.
                if (segment.Lost)
                {
                    segment.Lost = segment.Retransmitting = false;
                    _lostOut--;
                    _retransOut--;
                }
            }
            else
            {
                if (!segment.EverRetransmitted)
                {
                    // SACKed without a retransmission, below the highest SACK: it was reordered.
                    if (segment.Start < HighestSackSeq && segment.Start < state.Reord) state.Reord = segment.Start;
                    if (segment.End <= _highSeq) state.Flag |= AckFlags.OrigSackAcked;
                    state.FirstSackt ??= segment.LastSent;
                    state.LastSackt = segment.LastSent;
                }
                if (segment.Lost)
                {
                    segment.Lost = false;
                    _lostOut--;
                }
            }
            segment.Sacked = true;
            state.Flag |= AckFlags.DataSacked;
            _sackedOut++;
            state.SackDelivered++;
            RateDelivered(segment, ref state);
        }
        // A D-SACK proves a retransmission of a SACKed (or in-flight) segment redundant.
        if (dupSack && segment.Retransmitting)
        {
            segment.Retransmitting = false;
            _retransOut--;
        }
    }

    /// <summary>
    /// tcp_is_sackblock_valid: inside (snd_una, snd_nxt]; a D-SACK may also lie below snd_una,
    /// down to undo_marker (a little below it, by max_window, when it crosses it).
    /// </summary>
    private bool IsSackBlockValid(bool dupSack, SeqNum start, SeqNum end)
    {
        if (end > SndNxt || start >= end) return false;
        if (start >= SndNxt) return false;
        if (start > SndUna) return true;
        if (!dupSack || _undoMarker is not { } marker) return false;
        if (end > SndUna) return false;
        if (start >= marker) return true;
        if (end <= marker) return false;
        return start >= end - MaxWindow;
    }

    /// <summary>
    /// tcp_check_dsack: the first block is a D-SACK if it lies below the ACK, or inside the
    /// second block (RFC 2883 section 4). Counts it and lowers the retransmissions awaiting proof.
    /// </summary>
    private bool CheckDsack(ReadOnlySpan<SackBlock> blocks, SeqNum ack, SeqNum priorSndUna, ref SackTagState state)
    {
        if (blocks.Length == 0) return false;
        SeqNum start0 = new(blocks[0].Left), end0 = new(blocks[0].Right);
        if (start0 < ack)
        {
            Counters.Increment(Mib.TcpExtTCPDSACKRecv);
        }
        else if (blocks.Length > 1)
        {
            SeqNum start1 = new(blocks[1].Left), end1 = new(blocks[1].Right);
            if (end0 > end1 || start0 < start1) return false;
            Counters.Increment(Mib.TcpExtTCPDSACKOfoRecv);
        }
        else
        {
            return false;
        }
        int dupSegments = DsackSeen(start0, end0, ref state);
        if (dupSegments == 0)
        {
            Counters.Increment(Mib.TcpExtTCPDSACKIgnoredDubious);
            return false;
        }
        Counters.Increment(Mib.TcpExtTCPDSACKRecvSegs, dupSegments);
        // A D-SACK for data already cumulatively acknowledged: count it blindly.
        if (_undoMarker is { } marker && _undoRetrans > 0 && end0 <= priorSndUna && end0 > marker)
            _undoRetrans = Math.Max(0, _undoRetrans - dupSegments);
        return true;
    }

    /// <summary>
    /// tcp_dsack_seen: how many duplicate segments the D-SACK reports, 0 if it is dubious (larger
    /// than any window, or more duplicates than we ever retransmitted).
    /// </summary>
    private int DsackSeen(SeqNum start, SeqNum end, ref SackTagState state)
    {
        if (start >= end) return 0;
        int length = end - start;
        if (length > MaxWindow) return 0;
        int dupSegments = 1;
        if (length > _mssCache) dupSegments = (length + _mssCache - 1) / _mssCache;
        else if (_tlpHighSeq == end) state.Flag |= AckFlags.DsackTlp;
        _dsackDups += dupSegments;
        if (_dsackDups > _totalRetrans) return 0;
        // RACK widens its reordering window after a D-SACK once reordering was seen (not for TLP).
        if (_reordSeen > 0 && (state.Flag & AckFlags.DsackTlp) == 0) _rackDsackSeen = true;
        state.Flag |= AckFlags.DsackingAck;
        state.SackDelivered += dupSegments;
        return dupSegments;
    }

    /// <summary>
    /// tcp_check_sack_reordering: data below the highest SACK was delivered without a
    /// retransmission; raise the reordering degree to the distance seen (in packets).
    /// </summary>
    private void CheckSackReordering(SeqNum lowSeq, bool timestamps)
    {
        SeqNum fack = HighestSackSeq;
        if (lowSeq >= fack) return;
        int metric = fack - lowSeq;
        int mss = _mssCache;
        if (mss > 0 && metric > _reordering * mss) _reordering = Math.Min((metric + mss - 1) / mss, Sysctls.TcpMaxReordering);
        _reordSeen++;
        Counters.Increment(timestamps ? Mib.TcpExtTCPTSReorder : Mib.TcpExtTCPSACKReorder);
    }

    // ----- Without SACK: duplicate ACKs stand in for SACKed segments (tcp_add_reno_sack) -----

    /// <summary>tcp_add_reno_sack: each duplicate ACK means one more segment arrived out of order.</summary>
    private void AddRenoSack(int dupAcks)
    {
        if (dupAcks == 0) return;
        int prior = _sackedOut;
        _sackedOut += dupAcks;
        CheckRenoReordering(0);
        if (_sackedOut > prior) _delivered += _sackedOut - prior;
    }

    /// <summary>tcp_remove_reno_sacks: a cumulative ACK ate one hole and the duplicate ACKs counted above it.</summary>
    private void RemoveRenoSacks(int acked)
    {
        if (acked > 0)
        {
            _delivered += Math.Max(acked - _sackedOut, 1);
            _sackedOut = acked - 1 >= _sackedOut ? 0 : _sackedOut - (acked - 1);
        }
        CheckRenoReordering(acked);
    }

    /// <summary>tcp_check_reno_reordering: more duplicate ACKs than segments beyond the hole means reordering.</summary>
    private void CheckRenoReordering(int addend)
    {
        int holes = Math.Min(Math.Max(_lostOut, 1), PacketsOut);
        if (_sackedOut + holes <= PacketsOut) return;
        _sackedOut = PacketsOut - holes;   // tcp_limit_reno_sacked
        _reordering = Math.Min(PacketsOut + addend, Sysctls.TcpMaxReordering);
        _reordSeen++;
        Counters.Increment(Mib.TcpExtTCPRenoReorder);
    }

    // ----- Marking losses -----

    /// <summary>tcp_mark_skb_lost: believe the segment lost (or, if it was retransmitted, its retransmission).</summary>
    private void MarkLost(ref SentSegment segment, LossDetection by)
    {
        if (segment.Sacked) return;
        VerifyRetransmitHint(segment.Start);
        if (segment.Lost)
        {
            if (segment.Retransmitting)
            {
                segment.Retransmitting = false;
                _retransOut--;
                segment.LostBy = LossDetection.LostRetransmit;
                Counters.Increment(Mib.TcpExtTCPLostRetransmit);
                _lost++;
            }
            return;
        }
        segment.Lost = true;
        segment.LostBy = by;
        _lostOut++;
        _lost++;
    }

    /// <summary>tcp_verify_retransmit_hint: a newly lost segment before the hint moves it back.</summary>
    private void VerifyRetransmitHint(SeqNum start)
    {
        if ((_retransmitHint is null && _retransOut >= _lostOut) || (_retransmitHint is { } hint && start < hint))
            _retransmitHint = start;
    }

    /// <summary>tcp_mark_head_lost (RFC 6675): segments with more than <paramref name="packets"/> SACKed segments above them... marked from the head.</summary>
    private void MarkHeadLost(int packets, bool markHead)
    {
        int sacked = 0;
        for (int i = 0; i < _sent.Count; i++)
        {
            ref SentSegment segment = ref _sent[i];
            if (segment.End > SndNxt) break;
            if (segment.Sacked) sacked++;
            if (sacked > packets) break;
            if (!segment.Lost) MarkLost(ref segment, LossDetection.DupThreshold);
            if (markHead) break;
        }
    }

    /// <summary>tcp_update_scoreboard without RACK: a segment is lost once tcp_reordering SACKed segments lie above it.</summary>
    private void UpdateScoreboard(bool fastRetransmit)
    {
        if (!SackOk) return;
        int sackedUpTo = _sackedOut - _reordering;
        if (sackedUpTo >= 0) MarkHeadLost(sackedUpTo, markHead: false);
        else if (fastRetransmit) MarkHeadLost(1, markHead: true);
    }

    /// <summary>tcp_newreno_mark_lost (RFC 6582): the head is lost after the duplicate-ACK threshold, or a partial ACK in Recovery.</summary>
    private void NewRenoMarkLost(bool sndUnaAdvanced)
    {
        if ((_caState < CongestionState.Recovery && _sackedOut >= _reordering)
            || (_caState == CongestionState.Recovery && sndUnaAdvanced))
        {
            ref SentSegment head = ref _sent.First;
            if (!head.Lost) MarkLost(ref head, LossDetection.NewReno);
        }
    }

    /// <summary>tcp_identify_packet_loss: NewReno without SACK, RACK with it (RFC 6675 marking comes later, in tcp_update_scoreboard).</summary>
    private void IdentifyPacketLoss(ref AckFlags flag)
    {
        if (PacketsOut == 0) return;
        if (!SackOk)
        {
            NewRenoMarkLost((flag & AckFlags.SndUnaAdvanced) != 0);
        }
        else if (IsRack)
        {
            int priorRetrans = _retransOut;
            if (RackMarkLost()) flag &= ~AckFlags.SetXmitTimer;
            if (priorRetrans > _retransOut) flag |= AckFlags.LostRetrans;
        }
    }

    /// <summary>tcp_time_to_recover: a loss is proven, or (without RACK) enough duplicate ACKs arrived.</summary>
    private bool TimeToRecover() => _lostOut > 0 || (!IsRack && _sackedOut + 1 > _reordering);

    /// <summary>tcp_force_fast_retransmit: the highest SACK is more than tcp_reordering segments above snd_una.</summary>
    private bool ForceFastRetransmit() => HighestSackSeq > SndUna + _reordering * _mssCache;
}
