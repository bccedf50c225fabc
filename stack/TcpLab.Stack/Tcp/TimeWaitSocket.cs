using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Wire;
using Instant = TcpLab.Stack.Time.Instant;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// What is left of a connection after it closed, as Linux's inet_timewait_sock: enough to
/// re-ACK a retransmitted FIN, answer stray segments and judge a new SYN for the same tuple.
/// It stands for two states: TIME_WAIT (60 s, restarted by a retransmitted FIN), and the
/// FIN_WAIT_2 of a connection the application already closed (tcp_fin_timeout), which still
/// waits for the peer's FIN.
/// </summary>
public sealed class TimeWaitSocket : TcpFlow
{
    /// <summary>TCP_TIMEWAIT_LEN: Linux's fixed 2MSL.</summary>
    public static readonly TimeSpan TimeWaitLength = TimeSpan.FromSeconds(60);

    private readonly TcpLayer _tcp;
    private readonly Timer _timer;
    private TcpState _substate;
    private SeqNum _rcvNxt;
    private readonly SeqNum _sndNxt;
    private readonly int _rcvWindow;
    private readonly byte _rcvWindowScale;
    private readonly bool _timestampsOk;
    private uint _tsRecent;
    private Instant? _tsRecentStamp;
    private readonly uint _tsOffset;
    private Instant? _lastOutOfWindowAnswer;
    private CauseCode? _nextAckCause;
    private bool _killed;

    internal TimeWaitSocket(TcpLayer tcp, TcpConnection connection, TcpState substate, TimeSpan timeout) : base(connection.Tuple)
    {
        _tcp = tcp;
        ConnectionId = connection.ConnectionId;
        _substate = substate;
        _rcvNxt = connection.RcvNxt;
        _sndNxt = connection.SndNxt;
        _rcvWindow = connection.ReceiveWindowRemaining;
        _rcvWindowScale = connection.ReceiveWindowScale;
        _timestampsOk = connection.TimestampsOk;
        _tsRecent = connection.TsRecent;
        _tsRecentStamp = connection.TsRecentStamp;
        _tsOffset = connection.TsOffset;
        _timer = tcp.Loop.CreateTimer(Expire);
        Schedule(timeout);
    }

    public override TcpState State => _substate;

    /// <summary>When the entry goes away, unless a segment restarts it.</summary>
    public Instant Expires => _timer.Deadline;

    internal enum Verdict { Done, Ack, Reset, Syn }

    /// <summary>
    /// tcp_timewait_state_process. For <see cref="Verdict.Syn"/>, <paramref name="isn"/> is the
    /// ISN the new connection must use: beyond anything this one sent (tw_snd_nxt + 65535 + 2).
    /// </summary>
    internal Verdict Process(in Segment segment, out uint isn)
    {
        isn = 0;
        TcpOptions options = segment.Header.Options;
        bool sawTimestamp = _timestampsOk && options.HasTimestamp && _tsRecentStamp is not null;
        bool pawsReject = sawTimestamp && Paws.Rejects(_tsRecent, options.TsVal, RecentAge, segment.Rst);

        if (_substate == TcpState.FinWait2)
        {
            // Still waiting for the peer's FIN after our FIN was acknowledged.
            if (pawsReject || !ListenSocket.InWindow(segment.Seq, segment.EndSeq, _rcvNxt, _rcvNxt + _rcvWindow))
                return AnswerOutOfWindow(Mib.TcpExtTCPACKSkippedFinWait2);
            if (segment.Rst)
            {
                Kill();
                return Verdict.Done;
            }
            if (segment.Syn && segment.Seq >= _rcvNxt) return Verdict.Reset;
            if (!segment.HasAck || segment.EndSeq <= _rcvNxt || segment.EndSeq == segment.Seq) return Verdict.Done;
            // Data after close() resets, as does anything but exactly the FIN.
            if (!segment.Fin || segment.EndSeq != _rcvNxt + 1) return Verdict.Reset;
            ChangeSubstate(TcpState.TimeWait);
            _rcvNxt = segment.EndSeq;
            RememberTimestamp(sawTimestamp, options.TsVal);
            Schedule(TimeWaitLength);
            _nextAckCause = CauseCode.TcpFinAck;
            return Verdict.Ack;
        }

        if (!pawsReject && segment.Seq == _rcvNxt && (segment.Seq == segment.EndSeq || segment.Rst))
        {
            // An in-window duplicate ACK or RST.
            if (segment.Rst)
            {
                if (!_tcp.Sysctls.TcpRfc1337)
                {
                    Kill();
                    return Verdict.Done;
                }
            }
            else
            {
                Schedule(TimeWaitLength);
            }
            RememberTimestamp(sawTimestamp, options.TsVal);
            return Verdict.Done;
        }

        // A new SYN may reopen the tuple if it cannot be an old duplicate: a higher sequence
        // number, or a newer timestamp (so clients reusing ports quickly are not stalled).
        if (segment.Syn && !segment.Rst && !segment.HasAck && !pawsReject
            && (segment.Seq > _rcvNxt || (sawTimestamp && unchecked((int)(_tsRecent - options.TsVal)) < 0)))
        {
            isn = unchecked(_sndNxt.Value + 65535 + 2);
            if (isn == 0) isn = 1;
            return Verdict.Syn;
        }

        if (pawsReject) _tcp.Counters.Increment(Mib.TcpExtPAWSEstab);
        if (segment.Rst) return Verdict.Done;
        // Everything else, a retransmitted FIN above all, is ACKed again and restarts 2MSL.
        if (pawsReject || segment.HasAck) Schedule(TimeWaitLength);
        return AnswerOutOfWindow(Mib.TcpExtTCPACKSkippedTimeWait);
    }

    private TimeSpan RecentAge => _tsRecentStamp is { } stamp ? _tcp.Now - stamp : TimeSpan.MaxValue;

    private Verdict AnswerOutOfWindow(Mib skipped) =>
        _tcp.IsRateLimited(ref _lastOutOfWindowAnswer, skipped) ? Verdict.Done : Verdict.Ack;

    private void RememberTimestamp(bool sawTimestamp, uint tsVal)
    {
        if (!sawTimestamp) return;
        _tsRecent = tsVal;
        _tsRecentStamp = _tcp.Now;
    }

    /// <summary>tcp_v4_timewait_ack: seq snd_nxt, ack rcv_nxt, the last window and timestamps.</summary>
    internal void SendAck()
    {
        if (_tcp.RentSegmentBuffer(Tuple.RemoteAddress) is not { } buffer) return;
        var header = new TcpHeader
        {
            SourcePort = Tuple.LocalPort,
            DestinationPort = Tuple.RemotePort,
            SequenceNumber = _sndNxt.Value,
            AcknowledgmentNumber = _rcvNxt.Value,
            Flags = TcpFlags.Ack,
            Window = (ushort)Math.Min(_rcvWindow >> _rcvWindowScale, 65535),
        };
        if (_timestampsOk) header.Options.SetTimestamp(_tcp.TimestampClock + _tsOffset, _tsRecent);
        CauseCode cause = _nextAckCause ?? (_substate == TcpState.TimeWait ? CauseCode.TcpTimeWaitAck : CauseCode.TcpDuplicateAckOutOfWindow);
        _nextAckCause = null;
        _tcp.Transmit(Tuple, header, buffer, new PacketCause(cause));
    }

    /// <summary>
    /// tcp_twsk_unique: whether connect() may take over this tuple. Only with tcp_tw_reuse
    /// (2 = loopback only, which never applies to the lab's addresses), timestamps, at least a
    /// second since the last one, and never from FIN_WAIT_2.
    /// </summary>
    internal bool MayReuseForConnect()
    {
        int reuse = _tcp.Sysctls.TcpTwReuse;
        if (_substate == TcpState.FinWait2) reuse = 0;
        if (reuse == 2 && !Tuple.RemoteAddress.IsLoopback && !Tuple.LocalAddress.IsLoopback) reuse = 0;
        return reuse != 0 && _tsRecentStamp is not null && RecentAge >= TimeSpan.FromSeconds(1);
    }

    /// <summary>The state a connection taking over the tuple starts from (sequence space and PAWS memory).</summary>
    internal (uint WriteSeq, uint TsRecent, Instant? TsRecentStamp) ReuseState =>
        (unchecked(_sndNxt.Value + 65535 + 2) is var seq && seq != 0 ? seq : 1, _tsRecent, _tsRecentStamp);

    private void Schedule(TimeSpan timeout) => _timer.Arm(_tcp.Deadline(timeout));

    private void ChangeSubstate(TcpState to)
    {
        TcpState from = _substate;
        _substate = to;
        _tcp.NotifyStateChange(this, from, to);
    }

    private void Expire() => Kill();

    /// <summary>inet_twsk_deschedule_put: the entry is gone.</summary>
    internal void Kill()
    {
        if (_killed) return;
        _killed = true;
        _timer.Cancel();
        _tcp.RemoveFlow(this);
        _tcp.TimeWaitCount--;
        _tcp.NotifyStateChange(this, _substate, TcpState.Closed);
    }
}
