namespace TcpLab.Stack.Tcp;

/// <summary>
/// Round-trip time estimation and the retransmission timeout, exactly as Linux's
/// tcp_rtt_estimator() and tcp_set_rto() compute them (in microseconds, fixed point):
/// srtt is kept ×8 and mdev ×4; rttvar never falls below tcp_rto_min, so the RTO floor is
/// about srtt + 200 ms rather than a flat 200 ms; RTO = srtt + rttvar, capped at tcp_rto_max.
/// Before any sample the RTO is the initial 1 s (RFC 6298 2.1).
/// </summary>
public sealed class RttEstimator
{
    public static readonly TimeSpan InitialRto = TimeSpan.FromSeconds(1);    // TCP_TIMEOUT_INIT
    public static readonly TimeSpan FallbackRto = TimeSpan.FromSeconds(3);   // TCP_TIMEOUT_FALLBACK

    private long _srtt8;        // srtt_us << 3
    private long _mdev4;        // mdev_us << 2
    private long _mdevMax;      // mdev_max_us
    private long _rttvar;       // rttvar_us
    private SeqNum _rttSeq;     // snd_nxt when the current rttvar period began

    public RttEstimator(TimeSpan rtoMin, TimeSpan rtoMax)
    {
        RtoMin = rtoMin;
        RtoMax = rtoMax;
        Rto = InitialRto;
        _mdev4 = (long)InitialRto.TotalMicroseconds;
    }

    public TimeSpan RtoMin { get; }
    public TimeSpan RtoMax { get; }

    /// <summary>The current retransmission timeout before backoff (icsk_rto).</summary>
    public TimeSpan Rto { get; private set; }

    public bool HasSample => _srtt8 != 0;
    public TimeSpan SmoothedRtt => TimeSpan.FromMicroseconds(_srtt8 >> 3);
    /// <summary>What `ss` prints as the second number of rtt:a/b (mdev).</summary>
    public TimeSpan RttVariation => TimeSpan.FromMicroseconds(_mdev4 >> 2);
    public TimeSpan RttVar => TimeSpan.FromMicroseconds(_rttvar);
    /// <summary>The smallest RTT sample seen (tcp_min_rtt, used by RACK and the rate sampler); MaxValue before any.</summary>
    public TimeSpan MinRtt { get; private set; } = TimeSpan.MaxValue;

    /// <summary>srtt_us &gt;&gt; 2: twice the smoothed RTT at the estimator's own precision (the loss probe timeout's base).</summary>
    public TimeSpan TwiceSmoothedRtt => TimeSpan.FromMicroseconds(_srtt8 >> 2);

    /// <summary>
    /// tcp_update_rtt_min with the RTT of the last (S)ACKed packet. Linux keeps a windowed minimum
    /// (tcp_min_rtt_wlen, 300 s); the lab keeps the all-time minimum, which differs only when a
    /// path's delay grows for longer than five minutes.
    /// </summary>
    public void ObserveMinRtt(TimeSpan sample)
    {
        if (sample <= TimeSpan.Zero) sample = TimeSpan.FromMicroseconds(1);
        if (sample < MinRtt) MinRtt = sample;
    }

    /// <summary>Feeds one RTT measurement; <paramref name="sndUna"/> and <paramref name="sndNxt"/> pace the rttvar decay.</summary>
    public void AddSample(TimeSpan sample, SeqNum sndUna, SeqNum sndNxt)
    {
        // A 0 us sample is taken as it is (the srtt floor below is 1/8 us, as in Linux),
        // so a zero-delay simulated wire gets exactly rto_min, as a real kernel would.
        long m = Math.Max(0, (long)sample.TotalMicroseconds);
        long rtoMinUs = (long)RtoMin.TotalMicroseconds;
        if (_srtt8 != 0)
        {
            m -= _srtt8 >> 3;          // error in the estimate
            _srtt8 += m;               // srtt = 7/8 srtt + 1/8 new
            if (m < 0)
            {
                m = -m;
                m -= _mdev4 >> 2;
                // A sample below srtt only moves mdev an eighth as much (Eifel's observation).
                if (m > 0) m >>= 3;
            }
            else
            {
                m -= _mdev4 >> 2;
            }
            _mdev4 += m;               // mdev = 3/4 mdev + 1/4 new
            if (_mdev4 > _mdevMax)
            {
                _mdevMax = _mdev4;
                if (_mdevMax > _rttvar) _rttvar = _mdevMax;
            }
            // Once per RTT (when snd_una passes rtt_seq), let rttvar decay towards the period's max mdev.
            if (sndUna > _rttSeq)
            {
                if (_mdevMax < _rttvar) _rttvar -= (_rttvar - _mdevMax) >> 2;
                _rttSeq = sndNxt;
                _mdevMax = rtoMinUs;
            }
        }
        else
        {
            _srtt8 = m << 3;
            _mdev4 = m << 1;           // so the first RTO is 3 × RTT
            _rttvar = Math.Max(_mdev4, rtoMinUs);
            _mdevMax = _rttvar;
            _rttSeq = sndNxt;
        }
        _srtt8 = Math.Max(1, _srtt8);
        // __tcp_set_rto + tcp_bound_rto
        Rto = TimeSpan.FromMicroseconds(Math.Min((_srtt8 >> 3) + _rttvar, (long)RtoMax.TotalMicroseconds));
    }

    /// <summary>
    /// tcp_init_metrics: the handshake produced no RTT sample (a retransmitted SYN without
    /// timestamps), so the first data RTO is a conservative 3 s (RFC 6298 5.7).
    /// </summary>
    public void UseFallbackIfNoSample()
    {
        if (HasSample) return;
        _rttvar = (long)FallbackRto.TotalMicroseconds;
        _mdev4 = _mdevMax = _rttvar;
        Rto = FallbackRto;
    }

    /// <summary>The RTO after <paramref name="backoff"/> doublings, capped (inet_csk_rto_backoff).</summary>
    public TimeSpan BackedOff(int backoff) => Backoff(Rto, backoff, RtoMax);

    public static TimeSpan Backoff(TimeSpan rto, int backoff, TimeSpan max) =>
        backoff >= 62 || rto.Ticks > max.Ticks >> backoff ? max : TimeSpan.FromTicks(rto.Ticks << backoff);

    /// <summary>Doubles the base RTO itself, as tcp_retransmit_timer does after each timeout.</summary>
    public void Double() => Rto = TimeSpan.FromTicks(Math.Min(Rto.Ticks * 2, RtoMax.Ticks));
}
