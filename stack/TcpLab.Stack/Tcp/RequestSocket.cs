using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;
using Instant = TcpLab.Stack.Time.Instant;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// A half-open connection in SYN_RECV, kept as small as Linux's request_sock: what the SYN
/// said, what our SYN-ACK said, and one timer. It becomes a full <see cref="TcpConnection"/>
/// only when the handshake's final ACK arrives and the accept queue has room. The same small
/// record, never entered in any table, carries a syncookie SYN-ACK out and a validated cookie
/// back in; a Fast Open child keeps its request for the SYN-ACK until the handshake completes.
/// </summary>
public sealed class RequestSocket : TcpFlow
{
    private Timer? _timer;

    internal RequestSocket(ListenSocket listener, FourTuple tuple) : base(tuple)
    {
        Listener = listener;
    }

    public ListenSocket Listener { get; }
    public override TcpState State => TcpState.SynReceived;

    /// <summary>The peer's ISN (rcv_isn).</summary>
    public SeqNum Irs
    {
        get => _irs;
        internal set
        {
            _irs = value;
            RcvNxt = value + 1;
        }
    }
    private SeqNum _irs;
    /// <summary>Our ISN in the SYN-ACK (snt_isn).</summary>
    public SeqNum Iss { get; internal set; }
    /// <summary>What our SYN-ACK acknowledges: the SYN, plus its data when Fast Open accepted it.</summary>
    public SeqNum RcvNxt { get; internal set; }
    /// <summary>A syncookie request: its ISN is the cookie, its TSval carries the SYN's options, nothing is kept.</summary>
    public bool Syncookie { get; internal set; }

    /// <summary>The peer's MSS (its option, or 536 without one).</summary>
    internal ushort PeerMss;
    internal bool TimestampsOk;
    internal bool SackOk;
    internal bool WindowScaleOk;
    internal byte SendWindowScale;      // the peer's shift
    internal byte ReceiveWindowScale;   // ours
    internal uint TsRecent;
    internal uint TsOffset;
    internal int ReceiveWindow;         // rsk_rcv_wnd
    internal int WindowClamp;           // rsk_window_clamp
    internal ushort AdvertisedMss;

    /// <summary>SYN-ACK timeouts so far (num_timeout): drives backoff and the give-up point.</summary>
    public int Timeouts { get; internal set; }
    /// <summary>SYN-ACKs sent after the first, for any reason (num_retrans): disables the SYN-ACK RTT sample.</summary>
    public int Retransmissions { get; internal set; }
    /// <summary>The final ACK arrived but the accept queue was full (inet_rsk(req)->acked).</summary>
    public bool Acked { get; internal set; }

    internal Instant? FirstSynAckSent;
    internal Instant? LastOutOfWindowAnswer;

    /// <summary>The SYN-ACK timer (rsk_timer), made on first use: cookie requests never need one.</summary>
    internal Timer Timer => _timer ??= Listener.Tcp.Loop.CreateTimer(OnTimer);

    /// <summary>reqsk_timeout: min(1 s &lt;&lt; num_timeout, tcp_rto_max).</summary>
    internal TimeSpan Timeout => RttEstimator.Backoff(RttEstimator.InitialRto, Timeouts, Listener.Tcp.Sysctls.TcpRtoMax);

    private void OnTimer() => Listener.OnRequestTimer(this);

    /// <summary>
    /// tcp_make_synack: SYN|ACK with the request's options, window unscaled (RFC 7323 2.2). A
    /// cookie SYN-ACK's TSval carries the SYN's options in its low bits (cookie_init_timestamp);
    /// <paramref name="fastOpenCookie"/>, when given, goes out as a Fast Open option (only in
    /// the first SYN-ACK: retransmissions carry none, as tcp_rtx_synack passes no cookie).
    /// </summary>
    internal void SendSynAck(PacketCause cause, ReadOnlySpan<byte> fastOpenCookie = default, FastOpenEncoding encoding = FastOpenEncoding.Rfc7413)
    {
        TcpLayer tcp = Listener.Tcp;
        if (tcp.RentSegmentBuffer(Tuple.RemoteAddress) is not { } buffer) return;
        var header = new TcpHeader
        {
            SourcePort = Tuple.LocalPort,
            DestinationPort = Tuple.RemotePort,
            SequenceNumber = Iss.Value,
            AcknowledgmentNumber = RcvNxt.Value,
            Flags = TcpFlags.Syn | TcpFlags.Ack,
            Window = (ushort)Math.Min(ReceiveWindow, 65535),
        };
        header.Options.SetMss(AdvertisedMss);
        if (WindowScaleOk) header.Options.SetWindowScale(ReceiveWindowScale);
        if (TimestampsOk)
        {
            uint clock = Syncookie ? Syncookies.EncodeTimestamp(tcp.TimestampClock, WindowScaleOk, SendWindowScale, SackOk) : tcp.TimestampClock;
            header.Options.SetTimestamp(clock + TsOffset, TsRecent);
        }
        header.Options.SackPermitted = SackOk;
        if (!fastOpenCookie.IsEmpty) header.Options.SetFastOpenCookie(fastOpenCookie, encoding);
        FirstSynAckSent ??= tcp.Now;
        tcp.Transmit(Tuple, header, buffer, cause);
    }
}
