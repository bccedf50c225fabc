using System.Numerics;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp.Congestion;

/// <summary>
/// CUBIC (RFC 9438) as Linux's tcp_cubic.c computes it, fixed point and all: after a loss cwnd
/// follows W(t) = C (t - K)^3 + Wmax with C = 0.4 and β = 717/1024 ≈ 0.7, never slower than the
/// Reno-friendly estimate; fast convergence lowers Wmax when the loss came below the previous
/// one. Slow start ends early with HyStart (ACK-train length or a rise in delay, from cwnd 16).
/// Time is counted in jiffies, as the kernel does, so <see cref="ICongestionHost.Hz"/> matters.
/// </summary>
internal sealed class CubicCongestionControl : CongestionControl
{
    // Module parameters at their defaults (/sys/module/tcp_cubic/parameters).
    private const int BetaScale = 1024;           // BICTCP_BETA_SCALE
    private const int Beta = 717;                 // beta
    private const int BicScale = 41;              // bic_scale: C = 41 / 1024 * 10 ≈ 0.4
    private const int BicHz = 10;                 // BICTCP_HZ: time in units of 1/1024 s
    private const bool FastConvergence = true;
    private const bool TcpFriendliness = true;
    private const bool HyStartEnabled = true;
    private const int HyStartLowWindow = 16;
    private const long HyStartAckDeltaUs = 2000;
    private const int HyStartMinSamples = 8;
    private const long HyStartDelayMinUs = 4000;
    private const long HyStartDelayMaxUs = 16000;
    private const int GsoMaxSize = 65536;         // sk_gso_max_size of a device with software GSO

    /// <summary>beta_scale = 8 (1024 + β) / 3 / (1024 - β): the Reno-friendly estimate's slope.</summary>
    private const uint RenoBetaScale = 8 * (BetaScale + Beta) / 3 / (BetaScale - Beta);
    /// <summary>cube_rtt_scale = bic_scale × 10 (1024 C / rtt for the fixed 100 ms rtt).</summary>
    private const ulong CubeRttScale = BicScale * 10;
    /// <summary>cube_factor = 2^(10 + 3 BICTCP_HZ) / (bic_scale × 10).</summary>
    private const ulong CubeFactor = (1UL << (10 + 3 * BicHz)) / (BicScale * 10);

    // struct bictcp
    private uint _cnt;               // increase cwnd by 1 after this many ACKed packets
    private uint _lastMaxCwnd;       // Wmax
    private uint _lastCwnd;
    private long _lastTime;          // jiffies
    private uint _originPoint;
    private uint _k;                 // time to the origin point, in 1/1024 s
    private long _delayMinUs;
    private long _epochStart;        // jiffies; 0 = no epoch
    private uint _ackCount;
    private uint _tcpCwnd;           // the Reno-friendly estimate
    private int _sampleCount;
    private bool _found;
    private long _roundStartUs;
    private SeqNum _endSeq;
    private long _lastAckUs;
    private long _currentRttUs;

    public override string Name => "cubic";

    /// <summary>cubictcp_init.</summary>
    internal override void Init(ICongestionHost tcp)
    {
        Reset();
        if (HyStartEnabled) ResetHyStart(tcp);
    }

    /// <summary>bictcp_reset: everything but the HyStart round.</summary>
    private void Reset()
    {
        _cnt = _lastMaxCwnd = _lastCwnd = _originPoint = _k = _ackCount = _tcpCwnd = 0;
        _lastTime = _epochStart = 0;
        _delayMinUs = 0;
        _sampleCount = 0;
        _found = false;
    }

    /// <summary>bictcp_hystart_reset: a new round starts now and ends when snd_nxt is ACKed.</summary>
    private void ResetHyStart(ICongestionHost tcp)
    {
        _roundStartUs = _lastAckUs = ClockUs(tcp);
        _endSeq = tcp.SendNext;
        _currentRttUs = uint.MaxValue;
        _sampleCount = 0;
    }

    private static long ClockUs(ICongestionHost tcp) => tcp.Now.Microseconds;
    private static long Jiffies(ICongestionHost tcp) => JiffiesAt(tcp.Now, tcp.Hz);

    /// <summary>tcp_jiffies32 at <paramref name="t"/>; like INITIAL_JIFFIES, never 0, which means "no epoch".</summary>
    private static long JiffiesAt(Instant t, int hz) => (1L << 32) + t.Nanoseconds * hz / 1_000_000_000;

    /// <summary>cubictcp_cwnd_event: after idle, shift the epoch so the curve does not jump.</summary>
    internal override void CwndEvent(ICongestionHost tcp, CongestionEvent congestionEvent)
    {
        if (congestionEvent != CongestionEvent.TxStart) return;
        long now = Jiffies(tcp);
        long delta = now - JiffiesAt(tcp.LastSendTime, tcp.Hz);
        if (_epochStart != 0 && delta > 0)
        {
            _epochStart += delta;
            if (_epochStart > now) _epochStart = now;
        }
    }

    /// <summary>cubictcp_cong_avoid.</summary>
    internal override void CongestionAvoidance(ICongestionHost tcp, SeqNum ack, int acked)
    {
        CongestionWindow window = tcp.Window;
        acked = window.GrowInSlowStart(acked);
        if (acked == 0) return;
        Update(tcp, (uint)window.Cwnd, (uint)acked);
        window.AdditiveIncrease((int)_cnt, acked);
    }

    /// <summary>cubictcp_recalc_ssthresh: a new epoch; Wmax with fast convergence; cwnd × β.</summary>
    internal override int Ssthresh(ICongestionHost tcp)
    {
        uint cwnd = (uint)tcp.Window.Cwnd;
        _epochStart = 0;
        _lastMaxCwnd = cwnd < _lastMaxCwnd && FastConvergence
            ? cwnd * (BetaScale + Beta) / (2 * BetaScale)
            : cwnd;
        return (int)Math.Max(cwnd * Beta / BetaScale, 2u);
    }

    /// <summary>cubictcp_state: an RTO forgets the curve and restarts HyStart.</summary>
    internal override void SetState(ICongestionHost tcp, CongestionState state)
    {
        if (state != CongestionState.Loss) return;
        Reset();
        ResetHyStart(tcp);
    }

    /// <summary>cubictcp_acked: track the minimum delay and run HyStart in slow start.</summary>
    internal override void PacketsAcked(ICongestionHost tcp, int packetsAcked, TimeSpan? rtt)
    {
        if (rtt is not { } sample) return;
        // Delay samples right after a reduction are discarded (queues are draining).
        if (_epochStart != 0 && Jiffies(tcp) - _epochStart < tcp.Hz) return;
        long delay = Math.Max(1, (long)sample.TotalMicroseconds);
        if (_delayMinUs == 0 || _delayMinUs > delay) _delayMinUs = delay;
        if (!_found && tcp.Window.InSlowStart && HyStartEnabled) HyStartUpdate(tcp, delay);
    }

    /// <summary>bictcp_update: the cubic function gives the target, hence how many ACKs per cwnd increment.</summary>
    private void Update(ICongestionHost tcp, uint cwnd, uint acked)
    {
        long now = Jiffies(tcp);
        _ackCount += acked;
        if (_lastCwnd == cwnd && now - _lastTime <= tcp.Hz / 32) return;

        // The cubic function updates cnt at most once per jiffy; a reduction resets the epoch.
        if (_epochStart == 0 || now != _lastTime)
        {
            _lastCwnd = cwnd;
            _lastTime = now;
            if (_epochStart == 0)
            {
                _epochStart = now;
                _ackCount = acked;
                _tcpCwnd = cwnd;
                if (_lastMaxCwnd <= cwnd)
                {
                    _k = 0;
                    _originPoint = cwnd;
                }
                else
                {
                    // K = cbrt((Wmax - cwnd) / C), in 1/1024 s.
                    _k = CubicRoot(CubeFactor * (_lastMaxCwnd - cwnd));
                    _originPoint = _lastMaxCwnd;
                }
            }

            // t = time since the epoch plus the minimum delay, in 1/1024 s.
            ulong t = (ulong)(now - _epochStart) + (ulong)UsecsToJiffies(_delayMinUs, tcp.Hz);
            t = (t << BicHz) / (ulong)tcp.Hz;
            ulong offs = t < _k ? _k - t : t - _k;
            uint delta = (uint)((CubeRttScale * offs * offs * offs) >> (10 + 3 * BicHz));
            uint target = t < _k ? _originPoint - delta : _originPoint + delta;

            _cnt = target > cwnd ? cwnd / (target - cwnd) : 100 * cwnd;   // far below target: fast; above: very slow
            // While the bandwidth is unknown (no loss yet), grow at least 5% per RTT.
            if (_lastMaxCwnd == 0 && _cnt > 20) _cnt = 20;
        }

        if (TcpFriendliness)
        {
            // The window standard TCP would have (RFC 9438 4.3): never grow slower than that.
            uint renoDelta = (cwnd * RenoBetaScale) >> 3;
            while (renoDelta > 0 && _ackCount > renoDelta)
            {
                _ackCount -= renoDelta;
                _tcpCwnd++;
            }
            if (_tcpCwnd > cwnd)
            {
                uint maxCnt = cwnd / (_tcpCwnd - cwnd);
                if (_cnt > maxCnt) _cnt = maxCnt;
            }
        }
        // At most one packet per two ACKed: cwnd grows at most 1.5× per RTT.
        _cnt = Math.Max(_cnt, 2u);
    }

    /// <summary>
    /// hystart_update: slow start ends (ssthresh = cwnd) when ACKs of one round keep arriving
    /// closely spaced for longer than half the minimum delay (the ACK train), or when the
    /// round's minimum RTT exceeds the path's by an eighth (4 to 16 ms).
    /// </summary>
    private void HyStartUpdate(ICongestionHost tcp, long delay)
    {
        CongestionWindow window = tcp.Window;
        if (tcp.SendUnacknowledged > _endSeq) ResetHyStart(tcp);
        if (window.Cwnd < HyStartLowWindow) return;

        long now = ClockUs(tcp);
        if (now - _lastAckUs <= HyStartAckDeltaUs)
        {
            _lastAckUs = now;
            // Without pacing (sk_pacing_status NONE), half of delay_min plus the GSO cushion.
            long threshold = (_delayMinUs + AckDelayUs(tcp)) >> 1;
            if (now - _roundStartUs > threshold)
            {
                _found = true;
                tcp.Counters.Increment(Mib.TcpExtTCPHystartTrainDetect);
                tcp.Counters.Increment(Mib.TcpExtTCPHystartTrainCwnd, window.Cwnd);
                window.Ssthresh = window.Cwnd;
            }
        }

        if (_currentRttUs > delay) _currentRttUs = delay;
        if (_sampleCount < HyStartMinSamples)
        {
            _sampleCount++;
        }
        else if (_currentRttUs > _delayMinUs + Math.Clamp(_delayMinUs >> 3, HyStartDelayMinUs, HyStartDelayMaxUs))
        {
            _found = true;
            tcp.Counters.Increment(Mib.TcpExtTCPHystartDelayDetect);
            tcp.Counters.Increment(Mib.TcpExtTCPHystartDelayCwnd, window.Cwnd);
            window.Ssthresh = window.Cwnd;
        }
    }

    /// <summary>hystart_ack_delay: room for GSO/GRO aggregation, the time 4 × 64 KB take at the pacing rate, at most 1 ms.</summary>
    private static long AckDelayUs(ICongestionHost tcp)
    {
        long rate = tcp.PacingRate;
        if (rate == 0) return 0;
        return Math.Min(1000, (long)GsoMaxSize * 4 * 1_000_000 / rate);
    }

    private static long UsecsToJiffies(long us, int hz) => (us * hz + 999_999) / 1_000_000;

    /// <summary>cubic_root: a table lookup and one Newton-Raphson step, as the kernel computes it (error ~0.2%).</summary>
    internal static uint CubicRoot(ulong a)
    {
        ReadOnlySpan<byte> v =
        [
            0, 54, 54, 54, 118, 118, 118, 118,
            123, 129, 134, 138, 143, 147, 151, 156,
            157, 161, 164, 168, 170, 173, 176, 179,
            181, 185, 187, 190, 192, 194, 197, 199,
            200, 202, 204, 206, 209, 211, 213, 215,
            217, 219, 221, 222, 224, 225, 227, 229,
            231, 232, 234, 236, 237, 239, 240, 242,
            244, 245, 246, 248, 250, 251, 252, 254,
        ];
        int b = a == 0 ? 0 : 64 - BitOperations.LeadingZeroCount(a);   // fls64
        if (b < 7) return ((uint)v[(int)a] + 35) >> 6;
        b = ((b * 84) >> 8) - 1;
        int shift = (int)(a >> (b * 3));
        uint x = (((uint)v[shift] + 10) << b) >> 6;
        x = 2 * x + (uint)(a / ((ulong)x * (x - 1)));
        return (x * 341) >> 10;
    }
}
