using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;
using Instant = TcpLab.Stack.Time.Instant;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// A half-open connection in SYN_RECV, kept as small as Linux's request_sock: what the SYN
/// said, what our SYN-ACK said, and one timer. It becomes a full <see cref="TcpConnection"/>
/// only when the handshake's final ACK arrives and the accept queue has room.
/// </summary>
public sealed class RequestSocket : TcpFlow
{
    internal RequestSocket(ListenSocket listener, FourTuple tuple) : base(tuple)
    {
        Listener = listener;
        Timer = listener.Tcp.Loop.CreateTimer(OnTimer);
    }

    public ListenSocket Listener { get; }
    public override TcpState State => TcpState.SynReceived;

    /// <summary>The peer's ISN (rcv_isn).</summary>
    public SeqNum Irs { get; internal set; }
    /// <summary>Our ISN in the SYN-ACK (snt_isn).</summary>
    public SeqNum Iss { get; internal set; }
    public SeqNum RcvNxt => Irs + 1;

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
    internal readonly Timer Timer;

    /// <summary>reqsk_timeout: min(1 s &lt;&lt; num_timeout, tcp_rto_max).</summary>
    internal TimeSpan Timeout => RttEstimator.Backoff(RttEstimator.InitialRto, Timeouts, Listener.Tcp.Sysctls.TcpRtoMax);

    private void OnTimer() => Listener.OnRequestTimer(this);

    /// <summary>tcp_make_synack: SYN|ACK with the request's options, window unscaled (RFC 7323 2.2).</summary>
    internal void SendSynAck(PacketCause cause)
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
        if (TimestampsOk) header.Options.SetTimestamp(tcp.TimestampClock + TsOffset, TsRecent);
        header.Options.SackPermitted = SackOk;
        FirstSynAckSent ??= tcp.Now;
        tcp.Transmit(Tuple, header, buffer, cause);
    }
}
