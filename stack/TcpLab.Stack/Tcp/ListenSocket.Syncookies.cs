using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The listener's side of syncookies (net/ipv4/syncookies.c, tcp_v4_cookie_check): a SYN that
/// finds the SYN queue full gets a SYN-ACK whose ISN is a cookie and nothing is kept; an ACK
/// that finds no request may return such a cookie, and then becomes a connection directly.
/// </summary>
public sealed partial class ListenSocket
{
    /// <summary>When cookies were last sent (tcp_synq_overflow keeps it in the listener's ts_recent_stamp).</summary>
    private Instant? _lastSynQueueOverflow;

    /// <summary>tcp_synq_overflow: remember that cookies are in use, at most once a second.</summary>
    private void NoteSynQueueOverflow()
    {
        Instant now = Tcp.Now;
        if (_lastSynQueueOverflow is { } last && now >= last && now <= last + TimeSpan.FromSeconds(1)) return;
        _lastSynQueueOverflow = now;
    }

    /// <summary>
    /// tcp_synq_no_recent_overflow: no cookie went out in the last TCP_SYNCOOKIE_VALID (2 min),
    /// so an ACK for no request cannot be returning one and is not even checked.
    /// </summary>
    private bool NoRecentSynQueueOverflow =>
        _lastSynQueueOverflow is not { } last || Tcp.Now < last - TimeSpan.FromSeconds(1) || Tcp.Now > last + Syncookies.Valid;

    /// <summary>
    /// cookie_init_sequence + tcp_v4_send_synack(TCP_SYNACK_COOKIE): the SYN-ACK's ISN encodes
    /// the SYN (its MSS rounded down to the cookie table), the request is forgotten at once, so
    /// this SYN-ACK is never retransmitted.
    /// </summary>
    private void SendCookieSynAck(RequestSocket request, in Segment syn)
    {
        ushort mss = request.PeerMss;
        request.Iss = Tcp.Syncookies.Make(request.Tuple, syn.Seq, ref mss, Tcp.Now);
        request.PeerMss = mss;
        NoteSynQueueOverflow();
        Tcp.Counters.Increment(Mib.TcpExtSyncookiesSent);
        request.SendSynAck(new PacketCause(CauseCode.TcpSynAckCookie, mss));
    }

    /// <summary>
    /// cookie_v4_check: an ACK for which no request exists. If cookies went out recently and it
    /// carries a valid one, the request is rebuilt from the cookie (and the options from the
    /// echoed timestamp) and becomes a connection in the accept queue; if the accept queue is
    /// full the ACK is dropped without an answer. Returns false when the listener should reset
    /// it instead (no recent cookies, a bad or expired cookie, options we have switched off).
    /// </summary>
    private bool TryCookieAck(FourTuple tuple, in Segment ack)
    {
        if (NoRecentSynQueueOverflow) return false;
        var counters = Tcp.Counters;
        var sysctls = Tcp.Sysctls;
        ushort mss = Tcp.Syncookies.Check(tuple, ack.Ack, ack.Seq, Tcp.Now);
        if (mss == 0)
        {
            counters.Increment(Mib.TcpExtSyncookiesFailed);
            return false;
        }
        counters.Increment(Mib.TcpExtSyncookiesRecv);

        TcpOptions options = ack.Header.Options;
        bool sawTimestamp = options.HasTimestamp && sysctls.TcpTimestamps != 0;
        uint tsOffset = 0;
        bool sackOk = false, windowScaleOk = false;
        byte peerWindowScale = 0;
        if (sawTimestamp)
        {
            uint tsEcr = options.TsEcr;
            if (tsEcr != 0)
            {
                tsOffset = Tcp.TimestampOffset(tuple);
                tsEcr = unchecked(tsEcr - tsOffset);
            }
            if (!Syncookies.DecodeTimestamp(tsEcr, sysctls.TcpSack, sysctls.TcpWindowScaling, out sackOk, out windowScaleOk, out peerWindowScale))
                return false;
        }
        var request = new RequestSocket(this, tuple)
        {
            ConnectionId = Tcp.NewConnectionId(),
            Irs = ack.Seq - 1,
            Iss = ack.Ack - 1,
            Syncookie = true,
            PeerMss = mss,
            TimestampsOk = sawTimestamp,
            TsRecent = sawTimestamp ? options.TsVal : 0,
            TsOffset = tsOffset,
            SackOk = sackOk,
            WindowScaleOk = windowScaleOk,
            SendWindowScale = Math.Min(peerWindowScale, (byte)InitialWindow.MaxWindowScale),
            AdvertisedMss = (ushort)TcpConnection.AdvertisedMss(Tcp, tuple.RemoteAddress, Options),
        };
        // cookie_v4_check redoes tcp_select_initial_window with the MSS from the cookie.
        SelectReceiveWindow(request, mss);
        if (AcceptQueueFull)
        {
            // tcp_v4_syn_recv_sock fails inside tcp_get_cookie_sock: dropped silently, whatever
            // tcp_abort_on_overflow says; the next segment with the same cookie may succeed.
            counters.Increment(Mib.TcpExtListenOverflows);
            ListenDrop();
            return true;
        }
        CompleteHandshake(request, ack, replacing: false);
        return true;
    }
}
