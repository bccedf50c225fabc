using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// TSO on send: a run of new full-sized segments that one <see cref="WriteXmit"/> sends in a
/// burst leaves as one superframe, which the link (a TAP with IFF_VNET_HDR) splits back into
/// those very segments, as Linux's tcp_write_xmit hands the device one TSO skb of
/// tcp_tso_segs() segments. Only the wire write is merged: each segment is recorded in flight,
/// counted and numbered (snd_nxt, the retransmission queue, cwnd in packets, IP ID) when it
/// joins, exactly as if it had gone out alone, so SACK, RACK and retransmission (always one
/// segment per frame) do not know superframes exist.
/// <para>
/// The split (tcp_gso_segment, inet_gso_segment) copies the header to every segment, advances
/// the sequence number and the IP ID, clears PSH and FIN on all but the last segment and CWR on
/// all but the first, and fixes lengths and checksums. So a superframe holds only segments whose
/// headers would differ in nothing else: ACK without other flags, PSH at most on the last one,
/// the same options (the TSval, which follows each segment's send time, must be equal), every
/// segment gso_size bytes but the last, which may be shorter and then ends it.
/// </para>
/// </summary>
public sealed partial class TcpConnection
{
    private PendingSuperframe _superframe;

    /// <summary>Superframes written (each counts its segments in <see cref="SegmentsOut"/>).</summary>
    public long SuperframesOut { get; private set; }

    /// <summary>
    /// Lets a segment just recorded in flight join the pending superframe, first writing that out
    /// if the segment cannot join it. False: the segment must go out alone, now. A segment opens a
    /// superframe only when it is full-sized and the link splits superframes
    /// (<paramref name="limit"/> > 0, payload bytes per superframe).
    /// </summary>
    private bool TryAddToSuperframe(in SentSegment segment, PacketCause cause, int mss, int limit)
    {
        int length = segment.Length;
        ref PendingSuperframe pending = ref _superframe;
        bool joins = pending.Segments > 0 && pending.Open && !segment.Fin && length > 0 && length <= pending.SegmentSize
                     && segment.Start == pending.Start + pending.Bytes && pending.Bytes + length <= limit
                     && TcpLayer.TimestampAt(segment.LastSent) == TcpLayer.TimestampAt(pending.SentAt);
        if (!joins) FlushSuperframe();
        if (!joins && (segment.Fin || length != mss || limit < 2 * mss)) return false;

        bool push = EndsAWrite(segment.Start, segment.End);
        if (!joins)
        {
            if (push) return false;   // PSH on the first segment would be PSH on a superframe of one
            pending = new PendingSuperframe { Start = segment.Start, SegmentSize = mss, SentAt = segment.LastSent, Cause = cause };
        }
        ushort ipId = CountSent(TcpFlags.Ack, retransmission: false, carriesData: true);
        if (pending.Segments == 0) pending.FirstIpId = ipId;
        pending.Segments++;
        pending.Bytes += length;
        pending.Push = push;
        // tso_fragment cuts at a short segment or a push point: nothing joins after either.
        pending.Open = length == pending.SegmentSize && !push;
        return true;
    }

    /// <summary>Writes the pending superframe, if any: one frame (a plain segment if only one joined).</summary>
    private void FlushSuperframe()
    {
        if (_superframe.Segments == 0) return;
        PendingSuperframe pending = _superframe;
        _superframe = default;
        PacketBuffer? buffer = pending.Segments == 1 ? _tcp.RentSegmentBuffer(Tuple.RemoteAddress) : _tcp.RentSuperframeBuffer(Tuple.RemoteAddress);
        if (buffer is null) return;   // no route any more: lost like any segment without one
        _sendBuffer.CopyTo(SendBufferOffset(pending.Start), buffer.Append(pending.Bytes));
        if (pending.Segments > 1)
        {
            buffer.Offload.Gso = GsoKind.TcpV4;
            buffer.Offload.GsoSize = (ushort)pending.SegmentSize;
            SuperframesOut++;
        }
        TcpHeader header = BuildHeader(pending.Start, pending.Push ? TcpFlags.Ack | TcpFlags.Psh : TcpFlags.Ack, pending.SentAt);
        PacketCause cause = pending.Segments == 1 ? pending.Cause : pending.Cause with { A = pending.Bytes };
        _tcp.Transmit(Tuple, header, buffer, cause, pending.FirstIpId);
    }

    /// <summary>New segments merged so far in this burst, not yet written.</summary>
    private struct PendingSuperframe
    {
        public SeqNum Start;
        public int Bytes;
        public int Segments;
        /// <summary>gso_size: the payload of each segment but the last (mss_now).</summary>
        public int SegmentSize;
        /// <summary>The first segment's send time, which gives every segment's TSval.</summary>
        public Instant SentAt;
        public ushort FirstIpId;
        public PacketCause Cause;
        /// <summary>The last segment ends an application write.</summary>
        public bool Push;
        /// <summary>Another full segment may join.</summary>
        public bool Open;
    }
}
