namespace TcpLab.Stack.Diagnostics;

/// <summary>
/// Why the stack emitted a frame: a code plus up to three numbers, formatted only when someone
/// reads it (the capture's packet comment, the trace), so the hot path stays allocation-free.
/// E.g. <c>new PacketCause(CauseCode.SynRetransmit, 2, 6, 2000)</c> prints
/// "RTO: SYN retransmit 2/6, rto 2000 ms".
/// </summary>
public readonly record struct PacketCause(CauseCode Code, int A = 0, int B = 0, long C = 0)
{
    public bool IsNone => Code == CauseCode.None;

    public override string ToString() => CauseText.Format(this);
}

/// <summary>Every reason a frame leaves the stack. <see cref="CauseText"/> words each one.</summary>
public enum CauseCode : ushort
{
    None,

    // Net
    ArpRequest,           // A = attempt, B = max attempts
    ArpReply,
    ArpGratuitous,
    IcmpEchoReply,
    IcmpEchoRequest,
    IcmpPortUnreachable,
    IcmpProtocolUnreachable,
    IcmpReassemblyTimeExceeded,
    IpFragment,           // A = fragment index, B = count

    // Fault stage, not the stack: frames the lab itself injected or altered
    FaultDuplicate,       // A = rule index
    FaultCorrupt,         // A = rule index

    // TCP
    TcpSyn,                      // connect()
    TcpSynFastOpen,              // connect() with Fast Open: A = data bytes in the SYN, B = 1 with a cookie option
    TcpSynCookieRequest,         // connect() with Fast Open but no cookie cached: the SYN asks for one
    TcpSynRetransmit,            // A = retry, B = max, C = rto ms
    TcpSynAck,                   // answer to a SYN
    TcpSynAckRetransmit,         // A = retry, B = max, C = timeout ms
    TcpSynAckForDuplicateSyn,    // retransmitted SYN answered at once (tcp_check_req -> inet_rtx_syn_ack)
    TcpSynAckCookie,             // stateless SYN-ACK carrying a syncookie, A = MSS encoded
    TcpSynAckFastOpen,           // SYN-ACK of a Fast Open child, A = SYN data bytes acknowledged
    TcpHandshakeAck,             // third packet of the handshake
    TcpData,                     // A = bytes
    TcpDataRetransmitRto,        // A = retry, C = rto ms
    TcpFastOpenRetransmit,       // the SYN-ACK did not acknowledge the SYN data: A = bytes sent again
    TcpFastRetransmit,           // A = bytes, B = duplicate ACKs (SACKed segments), C = 1 when RACK detected the loss
    TcpSackHoleRetransmit,       // A = bytes
    TcpNewRenoRetransmit,        // A = bytes: the hole after a partial ACK (RFC 6582)
    TcpLossProbe,                // TLP (RFC 8985 section 7): A = bytes, B = 1 when it retransmits the last segment
    TcpRackRetransmit,           // RACK reorder timer marked the segment lost: A = bytes
    TcpLostRetransmit,           // RACK found a retransmission lost: A = bytes
    TcpLossRetransmit,           // after an RTO, a segment marked lost (slow-start retransmit): A = bytes
    TcpFrtoNewData,              // F-RTO step 2b: new data instead of retransmissions: A = bytes
    TcpZeroWindowProbe,          // A = probe number, C = backoff ms
    TcpKeepaliveProbe,           // A = probe number, B = max
    TcpAck,                      // immediate ACK (quick-ack, or data needs an answer now)
    TcpFinAck,                   // ACK of the peer's FIN sent at once (FIN_WAIT_1/2)
    TcpDelayedAck,               // delayed-ACK timer fired, C = ato ms
    TcpDuplicateAck,             // out-of-order data or a hole: A = dup number
    TcpDuplicateDataAck,         // data we already had: the ACK carries a D-SACK (RFC 2883)
    TcpWindowUpdate,
    TcpFin,
    TcpFinRetransmit,            // A = retry, C = rto ms
    TcpChallengeAck,             // RFC 5961
    TcpDuplicateAckOutOfWindow,  // RFC 9293 3.10.7.4: unacceptable segment answered with an ACK
    TcpTimeWaitAck,              // re-ACK of a retransmitted FIN in TIME_WAIT
    TcpRstClosedPort,            // segment for no socket
    TcpRstAbort,                 // application abort / close with unread data
    TcpRstLinger,                // SO_LINGER with timeout 0
    TcpRstListenOverflow,        // tcp_abort_on_overflow=1
    TcpRstInvalidAck,            // ACK of something never sent in SYN_SENT / SYN_RECV
    TcpRstListenerAck,           // an ACK reached a listener: no connection, no request, no valid syncookie
    TcpRstTimeout,               // aborted on timeout
}

/// <summary>The words for each <see cref="CauseCode"/>.</summary>
public static class CauseText
{
    public static string Format(PacketCause c) => c.Code switch
    {
        CauseCode.None => "",
        CauseCode.ArpRequest => $"ARP request, attempt {c.A}/{c.B}",
        CauseCode.ArpReply => "ARP reply",
        CauseCode.ArpGratuitous => "gratuitous ARP",
        CauseCode.IcmpEchoReply => "ICMP echo reply",
        CauseCode.IcmpEchoRequest => "ICMP echo request",
        CauseCode.IcmpPortUnreachable => "ICMP port unreachable",
        CauseCode.IcmpProtocolUnreachable => "ICMP protocol unreachable",
        CauseCode.IcmpReassemblyTimeExceeded => "ICMP time exceeded: fragment reassembly timed out",
        CauseCode.IpFragment => $"IP fragment {c.A}/{c.B}",
        CauseCode.FaultDuplicate => $"duplicated by fault rule {c.A}",
        CauseCode.FaultCorrupt => $"corrupted by fault rule {c.A}",
        CauseCode.TcpSyn => "connect(): SYN",
        CauseCode.TcpSynFastOpen => c.B != 0 ? $"connect(): Fast Open SYN with cookie and {c.A} bytes of data" : $"connect(): Fast Open SYN with {c.A} bytes of data, no cookie",
        CauseCode.TcpSynCookieRequest => "connect(): SYN requesting a Fast Open cookie",
        CauseCode.TcpSynRetransmit => $"RTO: SYN retransmit {c.A}/{c.B}, rto {Ms(c.C)}",
        CauseCode.TcpSynAck => "SYN-ACK for a SYN",
        CauseCode.TcpSynAckRetransmit => $"SYN-ACK timer: retransmit {c.A}/{c.B}, timeout {Ms(c.C)}",
        CauseCode.TcpSynAckForDuplicateSyn => "SYN-ACK for a retransmitted SYN (not counted as a retry)",
        CauseCode.TcpSynAckCookie => $"SYN-ACK with a syncookie, MSS {c.A} encoded (no state kept, never retransmitted)",
        CauseCode.TcpSynAckFastOpen => $"SYN-ACK accepting {c.A} bytes of Fast Open SYN data",
        CauseCode.TcpHandshakeAck => "ACK completing the handshake",
        CauseCode.TcpData => $"data, {c.A} bytes",
        CauseCode.TcpDataRetransmitRto => $"RTO: retransmit {c.A}, rto {Ms(c.C)}",
        CauseCode.TcpFastOpenRetransmit => $"Fast Open: the SYN-ACK did not acknowledge the SYN data, {c.A} bytes again",
        CauseCode.TcpFastRetransmit => c.C == 1 ? $"fast retransmit, {c.A} bytes (RACK: {c.B} later segments SACKed)"
                                                 : $"fast retransmit, {c.A} bytes, after {c.B} duplicate ACKs",
        CauseCode.TcpSackHoleRetransmit => $"retransmit of a SACK hole, {c.A} bytes",
        CauseCode.TcpNewRenoRetransmit => $"NewReno: partial ACK, retransmit of the next hole, {c.A} bytes",
        CauseCode.TcpLossProbe => c.B != 0 ? $"tail loss probe: retransmit of the last segment, {c.A} bytes" : $"tail loss probe: new data, {c.A} bytes",
        CauseCode.TcpRackRetransmit => $"RACK: reordering window expired, retransmit, {c.A} bytes",
        CauseCode.TcpLostRetransmit => $"RACK: retransmission lost, retransmit again, {c.A} bytes",
        CauseCode.TcpLossRetransmit => $"RTO recovery: retransmit of a segment marked lost, {c.A} bytes",
        CauseCode.TcpFrtoNewData => $"F-RTO: new data to test the RTO, {c.A} bytes",
        CauseCode.TcpZeroWindowProbe => $"zero-window probe {c.A}, backoff {Ms(c.C)}",
        CauseCode.TcpKeepaliveProbe => $"keepalive probe {c.A}/{c.B}",
        CauseCode.TcpAck => "ACK",
        CauseCode.TcpFinAck => "ACK of the peer's FIN",
        CauseCode.TcpDelayedAck => $"delayed ACK, ato {Ms(c.C)}",
        CauseCode.TcpDuplicateAck => $"duplicate ACK #{c.A} (out-of-order data)",
        CauseCode.TcpDuplicateDataAck => "ACK with a D-SACK for duplicate data",
        CauseCode.TcpWindowUpdate => "window update",
        CauseCode.TcpFin => "close(): FIN",
        CauseCode.TcpFinRetransmit => $"RTO: FIN retransmit {c.A}, rto {Ms(c.C)}",
        CauseCode.TcpChallengeAck => "challenge ACK (RFC 5961)",
        CauseCode.TcpDuplicateAckOutOfWindow => "ACK for an unacceptable segment (RFC 9293 3.10.7.4)",
        CauseCode.TcpTimeWaitAck => "TIME_WAIT: re-ACK of a retransmitted FIN, 2MSL restarted",
        CauseCode.TcpRstClosedPort => "RST: no socket for this segment",
        CauseCode.TcpRstAbort => "RST: connection aborted",
        CauseCode.TcpRstLinger => "RST: close() with SO_LINGER timeout 0",
        CauseCode.TcpRstListenOverflow => "RST: accept queue full, tcp_abort_on_overflow=1",
        CauseCode.TcpRstInvalidAck => "RST: ACK for a sequence never sent",
        CauseCode.TcpRstListenerAck => "RST: ACK to a listener (no connection, no request, no valid syncookie)",
        CauseCode.TcpRstTimeout => "RST: connection timed out",
        _ => c.Code.ToString(),
    };

    private static string Ms(long ms) => ms % 1000 == 0 ? $"{ms / 1000} s" : $"{ms} ms";
}
