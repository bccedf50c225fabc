using System.Runtime.CompilerServices;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Diagnostics;

/// <summary>
/// SNMP/netstat counters under the names <c>nstat</c> prints on Linux, so a scenario can say
/// "TcpExtTCPSynRetrans == 5" and mean what the kernel means. Members prefixed <c>Arp</c> and
/// <c>Lab</c> have no kernel twin and say so in their names.
/// </summary>
public enum Mib
{
    // IP (RFC 4293 ipSystemStats as Linux exposes them)
    IpInReceives, IpInHdrErrors, IpInAddrErrors, IpInUnknownProtos, IpInDiscards, IpInDelivers,
    IpOutRequests, IpOutDiscards, IpOutNoRoutes,
    IpReasmTimeout, IpReasmReqds, IpReasmOKs, IpReasmFails,
    IpFragOKs, IpFragFails, IpFragCreates,
    IpExtInTruncatedPkts, IpExtInCsumErrors,

    // ICMP
    IcmpInMsgs, IcmpInErrors, IcmpInCsumErrors, IcmpInDestUnreachs, IcmpInEchos, IcmpInEchoReps,
    IcmpOutMsgs, IcmpOutErrors, IcmpOutDestUnreachs, IcmpOutEchos, IcmpOutEchoReps,

    // ARP (no nstat counterpart)
    ArpInRequests, ArpInReplies, ArpOutRequests, ArpOutReplies, ArpResolutionFailures, ArpQueueDrops,

    // TCP (RFC 4022)
    TcpActiveOpens, TcpPassiveOpens, TcpAttemptFails, TcpEstabResets,
    TcpInSegs, TcpOutSegs, TcpRetransSegs, TcpInErrs, TcpOutRsts, TcpInCsumErrors,

    // TcpExt (include/uapi/linux/snmp.h LINUX_MIB_*)
    TcpExtSyncookiesSent, TcpExtSyncookiesRecv, TcpExtSyncookiesFailed,
    TcpExtEmbryonicRsts, TcpExtOfoPruned, TcpExtOutOfWindowIcmps,
    TcpExtPruneCalled, TcpExtRcvPruned, TcpExtTCPRcvCollapsed,
    TcpExtTW, TcpExtTWRecycled, TcpExtTWKilled, TcpExtTCPTimeWaitOverflow,
    TcpExtPAWSActive, TcpExtPAWSEstab,
    TcpExtDelayedACKs, TcpExtDelayedACKLost,
    TcpExtListenOverflows, TcpExtListenDrops,
    TcpExtTCPReqQFullDoCookies, TcpExtTCPReqQFullDrop,
    TcpExtTCPPureAcks, TcpExtTCPHPAcks,
    TcpExtTCPRenoRecovery, TcpExtTCPSackRecovery, TcpExtTCPSACKReneging,
    TcpExtTCPSACKReorder, TcpExtTCPRenoReorder, TcpExtTCPTSReorder,
    TcpExtTCPFullUndo, TcpExtTCPPartialUndo, TcpExtTCPDSACKUndo, TcpExtTCPLossUndo,
    TcpExtTCPLostRetransmit, TcpExtTCPFastRetrans, TcpExtTCPSlowStartRetrans, TcpExtTCPTimeouts,
    TcpExtTCPLossProbes, TcpExtTCPLossProbeRecovery, TcpExtTCPSpuriousRTOs,
    TcpExtTCPDSACKOldSent, TcpExtTCPDSACKOfoSent, TcpExtTCPDSACKRecv, TcpExtTCPDSACKOfoRecv,
    TcpExtTCPAbortOnData, TcpExtTCPAbortOnClose, TcpExtTCPAbortOnMemory,
    TcpExtTCPAbortOnTimeout, TcpExtTCPAbortOnLinger,
    TcpExtTCPOFOQueue, TcpExtTCPOFODrop, TcpExtTCPOFOMerge, TcpExtTCPRcvQDrop, TcpExtTCPZeroWindowDrop,
    TcpExtTCPChallengeACK, TcpExtTCPSYNChallenge,
    TcpExtTCPFastOpenActive, TcpExtTCPFastOpenActiveFail, TcpExtTCPFastOpenPassive,
    TcpExtTCPFastOpenPassiveFail, TcpExtTCPFastOpenPassiveAltKey, TcpExtTCPFastOpenListenOverflow, TcpExtTCPFastOpenCookieReqd,
    TcpExtTCPFromZeroWindowAdv, TcpExtTCPToZeroWindowAdv, TcpExtTCPWantZeroWindowAdv,
    TcpExtTCPSynRetrans, TcpExtTCPOrigDataSent,
    TcpExtTCPACKSkippedSynRecv, TcpExtTCPACKSkippedPAWS, TcpExtTCPACKSkippedSeq,
    TcpExtTCPACKSkippedFinWait2, TcpExtTCPACKSkippedTimeWait, TcpExtTCPACKSkippedChallenge,
    TcpExtTCPWinProbe, TcpExtTCPKeepAlive, TcpExtTCPDelivered,
    // Loss recovery and congestion control
    TcpExtTCPRenoFailures, TcpExtTCPSackFailures, TcpExtTCPLossFailures,
    TcpExtTCPRenoRecoveryFail, TcpExtTCPSackRecoveryFail,
    TcpExtTCPSACKDiscard, TcpExtTCPDSACKIgnoredOld, TcpExtTCPDSACKIgnoredNoUndo, TcpExtTCPDSACKIgnoredDubious,
    TcpExtTCPDSACKRecvSegs, TcpExtTCPAckCompressed,
    TcpExtTCPHystartTrainDetect, TcpExtTCPHystartTrainCwnd, TcpExtTCPHystartDelayDetect, TcpExtTCPHystartDelayCwnd,
}

/// <summary>
/// Why the stack dropped a frame that parsed correctly, after Linux's enum skb_drop_reason
/// (include/net/dropreason-core.h). Frames that did not parse are counted by
/// <see cref="Counters.Reject"/> instead, per protocol and <see cref="WireError"/>.
/// </summary>
public enum DropReason
{
    /// <summary>Ethernet destination is neither our MAC nor broadcast (SKB_DROP_REASON_OTHERHOST).</summary>
    OtherHost,
    /// <summary>EtherType we do not speak (SKB_DROP_REASON_UNHANDLED_PROTO).</summary>
    UnhandledEtherType,
    /// <summary>ARP for an address that is not ours, or not an Ethernet/IPv4 ARP.</summary>
    ArpNotForUs,
    /// <summary>IPv4 destination is not one of our addresses (SKB_DROP_REASON_IP_OTHERHOST / INADDRERRORS).</summary>
    IpOtherHost,
    /// <summary>IPv4 protocol without a handler (SKB_DROP_REASON_IP_NOPROTO).</summary>
    IpNoProtocol,
    /// <summary>Fragment dropped: reassembly memory cap, overlap or timeout (SKB_DROP_REASON_FRAG_REASM_TIMEOUT, IP_FRAG_*).</summary>
    IpFragment,
    /// <summary>Source address is martian: broadcast, multicast or ours (SKB_DROP_REASON_IP_INVALID_SOURCE).</summary>
    IpInvalidSource,
    /// <summary>ICMP type the stack does not answer.</summary>
    IcmpUnhandled,
    /// <summary>Packet queued for ARP resolution that never resolved or overflowed the queue (SKB_DROP_REASON_NEIGH_FAILED / NEIGH_QUEUEFULL).</summary>
    NeighbourFailed,
    /// <summary>No route to the destination (SKB_DROP_REASON_IP_OUTNOROUTES).</summary>
    NoRoute,
    /// <summary>TCP segment for no socket, answered by RST where the RFC says so (SKB_DROP_REASON_NO_SOCKET).</summary>
    TcpNoSocket,
    /// <summary>TCP segment with an invalid flag combination (SYN+FIN, no flags, FIN without ACK, ...).</summary>
    TcpFlags,
    /// <summary>SYN in a synchronized state, answered by an RFC 5961 challenge ACK (SKB_DROP_REASON_TCP_INVALID_SYN).</summary>
    TcpInvalidSyn,
    /// <summary>TCP segment outside the receive window (SKB_DROP_REASON_TCP_INVALID_SEQUENCE / OLD_DATA).</summary>
    TcpInvalidSequence,
    /// <summary>TCP ACK of data never sent, or too old (SKB_DROP_REASON_TCP_TOO_OLD_ACK / ACK_UNSENT_DATA).</summary>
    TcpInvalidAck,
    /// <summary>RST that failed the RFC 5961 checks (SKB_DROP_REASON_TCP_RESET).</summary>
    TcpReset,
    /// <summary>TCP segment failed PAWS (SKB_DROP_REASON_TCP_RFC7323_PAWS).</summary>
    TcpPaws,
    /// <summary>Listener or request dropped a SYN or ACK (queue full, bad cookie, ...) (SKB_DROP_REASON_TCP_LISTEN_OVERFLOW ...).</summary>
    TcpListen,
    /// <summary>Receive buffer or out-of-order queue full (SKB_DROP_REASON_PROTO_MEM / TCP_OFO_DROP).</summary>
    TcpMemory,
    /// <summary>Segment arrived in a state that ignores it (e.g. data after a FIN, SYN_SENT without ACK).</summary>
    TcpState,
}

/// <summary>
/// The counters of one stack: MIB counters, drop reasons, and parser rejections per
/// protocol and reason. Increments are plain array writes on the loop thread.
/// </summary>
public sealed class Counters
{
    private static readonly string[] MibNames = Enum.GetNames<Mib>();
    private static readonly string[] DropNames = Enum.GetNames<DropReason>();
    private static readonly string[] ProtocolNames = Enum.GetNames<WireProtocol>();
    private static readonly string[] ErrorNames = Enum.GetNames<WireError>();

    private readonly long[] _mib = new long[MibNames.Length];
    private readonly long[] _drops = new long[DropNames.Length];
    private readonly long[] _rejects = new long[ProtocolNames.Length * ErrorNames.Length];

    public long this[Mib counter] => _mib[(int)counter];
    public long this[DropReason reason] => _drops[(int)reason];
    public long Rejected(WireProtocol protocol, WireError error) => _rejects[RejectIndex(protocol, error)];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Increment(Mib counter, long by = 1) => _mib[(int)counter] += by;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drop(DropReason reason) => _drops[(int)reason]++;

    /// <summary>Counts a frame a parser refused, under e.g. "Reject.Tcp.BadDataOffset".</summary>
    public void Reject(WireProtocol protocol, WireError error) => _rejects[RejectIndex(protocol, error)]++;

    private static int RejectIndex(WireProtocol protocol, WireError error) => (int)protocol * ErrorNames.Length + (int)error;

    /// <summary>
    /// Every non-zero counter by name: MIB names as nstat prints them, "Drop.Reason" and
    /// "Reject.Protocol.Error" for the rest.
    /// </summary>
    public IEnumerable<KeyValuePair<string, long>> NonZero()
    {
        for (int i = 0; i < _mib.Length; i++)
            if (_mib[i] != 0) yield return new(MibNames[i], _mib[i]);
        for (int i = 0; i < _drops.Length; i++)
            if (_drops[i] != 0) yield return new("Drop." + DropNames[i], _drops[i]);
        for (int i = 0; i < _rejects.Length; i++)
            if (_rejects[i] != 0)
                yield return new($"Reject.{ProtocolNames[i / ErrorNames.Length]}.{ErrorNames[i % ErrorNames.Length]}", _rejects[i]);
    }

    /// <summary>Looks a counter up by any name <see cref="NonZero"/> prints (absent ones read 0).</summary>
    public bool TryGet(string name, out long value)
    {
        if (Enum.TryParse(name, out Mib mib) && Enum.IsDefined(mib)) { value = this[mib]; return true; }
        if (name.StartsWith("Drop.", StringComparison.Ordinal) && Enum.TryParse(name[5..], out DropReason drop) && Enum.IsDefined(drop))
        {
            value = this[drop];
            return true;
        }
        string[] parts = name.Split('.');
        if (parts.Length == 3 && parts[0] == "Reject"
            && Enum.TryParse(parts[1], out WireProtocol p) && Enum.IsDefined(p)
            && Enum.TryParse(parts[2], out WireError e) && Enum.IsDefined(e))
        {
            value = Rejected(p, e);
            return true;
        }
        value = 0;
        return false;
    }
}
