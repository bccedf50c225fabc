using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tcp.Congestion;
using TcpLab.Stack.Tests.Support;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// Loss recovery in exact virtual time (lab.hz=0). The server writes a burst at t = 1 s to a
/// client 50 ms away (RTT 100 ms: srtt 100 ms, RTO 300 ms); chosen data frames are lost on the
/// way. Times are derived from the RTT: what arrives at the client at 1 + d is answered at once
/// (the receiver is in quick-ACK mode) and those answers reach the server at 1 + 2d.
/// </summary>
public class LossRecoveryTests
{
    private static readonly TimeSpan D = TimeSpan.FromMilliseconds(50);

    private static void Classic(Sysctls s)
    {
        s.TcpRecovery = 0;
        s.TcpEarlyRetrans = 0;
    }

    [Fact]
    public void One_lost_segment_in_a_burst_is_fast_retransmitted_when_the_third_SACK_arrives_one_RTT_later()
    {
        var burst = new Burst(D, lost: [3]);
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(3);

        var acks = burst.ClientAcks().Where(a => a.At.TotalSeconds is > 1 and < 1.1).ToList();
        // Segments 1 and 2 are ACKed; 4 to 10 draw duplicate ACKs with a growing SACK block.
        Assert.Equal(9, acks.Count);
        Assert.All(acks.Skip(2), a => Assert.Equal(acks[1].Ack, a.Ack));
        Assert.Equal(Enumerable.Range(1, 7), acks.Skip(2).Select(a => a.Header.Options.Sacks[0].Right - a.Header.Options.Sacks[0].Left).Select(n => (int)n / burst.Server.SendMss));

        var retransmission = Assert.Single(burst.Retransmissions());
        Assert.Equal(acks[1].Ack, retransmission.Seq);
        // RACK declares it lost once tcp_reordering (3) segments sent after it are SACKed: the third duplicate ACK.
        Assert.Equal(1.0 + burst.Rtt, retransmission.At.TotalSeconds, 9);
        Assert.Equal("fast retransmit, 1448 bytes (RACK: 3 later segments SACKed)", retransmission.Comment);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 1, 0, 0), (server[Mib.TcpExtTCPSackRecovery], server[Mib.TcpExtTCPFastRetrans], server[Mib.TcpExtTCPTimeouts], server[Mib.TcpExtTCPLossProbes]));
        // CUBIC: ssthresh = 717/1024 of the cwnd at the loss (10 + 2 ACKed in slow start), cwnd settles there.
        Assert.Equal(12 * 717 / 1024, burst.Server.SlowStartThreshold);
        Assert.Equal(burst.Server.SlowStartThreshold, burst.Server.CongestionWindow);
        Assert.Equal(CongestionState.Open, burst.Server.CongestionState);
    }

    [Fact]
    public void With_tcp_recovery_0_and_tcp_early_retrans_0_the_classic_third_duplicate_ACK_triggers_it()
    {
        var burst = new Burst(D, Classic, lost: [3]);
        burst.Send(10);
        burst.Net.RunUntil(3);

        var retransmission = Assert.Single(burst.Retransmissions());
        Assert.Equal(1.0 + burst.Rtt, retransmission.At.TotalSeconds, 9);
        Assert.Equal("fast retransmit, 1448 bytes, after 3 duplicate ACKs", retransmission.Comment);
        Assert.Equal(1, burst.Net.Server.Counters[Mib.TcpExtTCPSackRecovery]);
    }

    [Fact]
    public void Without_SACK_three_duplicate_ACKs_start_NewReno_fast_recovery()
    {
        var burst = new Burst(D, s => s.TcpSack = false, lost: [3]);
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(3);

        Assert.All(burst.ClientAcks(), a => Assert.Equal(0, a.Header.Options.SackBlockCount));
        var retransmission = Assert.Single(burst.Retransmissions());
        Assert.Equal(1.0 + burst.Rtt, retransmission.At.TotalSeconds, 9);
        Assert.Equal("fast retransmit, 1448 bytes, after 3 duplicate ACKs", retransmission.Comment);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 0, 1), (server[Mib.TcpExtTCPRenoRecovery], server[Mib.TcpExtTCPSackRecovery], server[Mib.TcpExtTCPFastRetrans]));
    }

    [Fact]
    public void Without_SACK_a_partial_ACK_retransmits_the_next_hole_at_once_RFC_6582()
    {
        var burst = new Burst(D, s => s.TcpSack = false, lost: [3, 6]);
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(3);

        var retransmissions = burst.Retransmissions();
        Assert.Equal(2, retransmissions.Count);
        Assert.Equal(1.0 + burst.Rtt, retransmissions[0].At.TotalSeconds, 9);
        // The retransmission fills the first hole; the ACK it draws stops at the second: a partial ACK.
        Assert.Equal(1.0 + 2 * burst.Rtt, retransmissions[1].At.TotalSeconds, 9);
        Assert.StartsWith("NewReno: partial ACK", retransmissions[1].Comment);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
        Assert.Equal(0, burst.Net.Server.Counters[Mib.TcpExtTCPTimeouts]);
    }

    [Fact]
    public void With_SACK_two_holes_are_both_retransmitted_in_the_first_round_trip()
    {
        var burst = new Burst(D, lost: [3, 6]);
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(3);

        var retransmissions = burst.Retransmissions();
        Assert.Equal(2, retransmissions.Count);
        Assert.All(retransmissions, r => Assert.Equal(1.0 + burst.Rtt, r.At.TotalSeconds, 9));
        Assert.StartsWith("fast retransmit", retransmissions[0].Comment);
        Assert.StartsWith("retransmit of a SACK hole", retransmissions[1].Comment);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
    }

    [Fact]
    public void Fewer_than_three_SACKs_wait_for_RACKs_reordering_window_a_quarter_of_the_min_RTT()
    {
        var burst = new Burst(D, lost: [1]);
        burst.Send(3);
        burst.Net.RunUntil(3);

        var retransmission = Assert.Single(burst.Retransmissions());
        // Two SACKs at 1 + RTT; the head is overdue RACK.rtt + min_rtt/4 after it was sent,
        // and the timer adds TCP_TIMEOUT_MIN (2 ms).
        Assert.Equal(1.0 + burst.Rtt + burst.Rtt / 4 + 0.002, retransmission.At.TotalSeconds, 9);
        Assert.Equal("RACK: reordering window expired, retransmit, 1448 bytes", retransmission.Comment);
        Assert.Equal(1, burst.Net.Server.Counters[Mib.TcpExtTCPSackRecovery]);
    }

    [Fact]
    public void Fewer_than_three_duplicate_ACKs_without_RACK_and_TLP_wait_for_the_RTO()
    {
        var burst = new Burst(D, Classic, lost: [1]);
        burst.Send(3);
        burst.Net.RunUntil(3);

        var retransmission = burst.Retransmissions()[0];
        Assert.Equal(1.0 + burst.Rtt + 0.2, retransmission.At.TotalSeconds, 9);   // RTO = srtt + tcp_rto_min
        Assert.StartsWith("RTO: retransmit 1", retransmission.Comment);
        Assert.Equal(0, burst.Net.Server.Counters[Mib.TcpExtTCPSackRecovery]);
    }

    // ----- Tail loss probes (RFC 8985 section 7) -----

    private static readonly TimeSpan ShortDelay = TimeSpan.FromMilliseconds(5);   // RTT 10 ms: the RTO (210 ms) is far off

    [Fact]
    public void A_lost_tail_is_probed_two_srtt_after_the_last_ACK_and_the_probes_SACK_lets_RACK_repair_the_rest()
    {
        var burst = new Burst(ShortDelay, lost: [9, 10]);
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(3);

        double lastAck = 1.0 + burst.Rtt;   // the ACKs of segments 1 to 8 arrive
        var retransmissions = burst.Retransmissions();
        Assert.Equal(2, retransmissions.Count);
        // PTO = 2 srtt + 2 ms while more than one segment is out.
        Assert.Equal(lastAck + 2 * burst.Rtt + 0.002, retransmissions[0].At.TotalSeconds, 9);
        Assert.Equal("tail loss probe: retransmit of the last segment, 1448 bytes", retransmissions[0].Comment);
        // The probe's SACK shows segment 9 overdue (sent before a delivered one): RACK retransmits it.
        Assert.Equal(retransmissions[0].At.TotalSeconds + burst.Rtt, retransmissions[1].At.TotalSeconds, 9);
        Assert.Equal("fast retransmit, 1448 bytes (RACK: 1 later segments SACKed)", retransmissions[1].Comment);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 0), (server[Mib.TcpExtTCPLossProbes], server[Mib.TcpExtTCPTimeouts]));
    }

    [Fact]
    public void A_lone_segment_in_flight_gets_tcp_rto_min_added_to_its_probe_timeout_which_the_RTO_caps()
    {
        var burst = new Burst(ShortDelay, lost: [10]);
        burst.Send(10);
        burst.Net.RunUntil(3);

        var probe = Assert.Single(burst.Retransmissions());
        // One segment out when the ACK of segment 9 arrives: PTO = 2 srtt + tcp_rto_min = 220 ms,
        // but never later than the RTO the ACK restarts (srtt + 200 ms = 210 ms).
        Assert.Equal(1.0 + burst.Rtt + burst.Rtt + 0.2, probe.At.TotalSeconds, 9);
        Assert.StartsWith("tail loss probe", probe.Comment);
        Assert.Equal(0, burst.Net.Server.Counters[Mib.TcpExtTCPTimeouts]);
    }

    [Fact]
    public void With_tcp_early_retrans_0_a_lost_tail_waits_for_the_RTO()
    {
        var burst = new Burst(ShortDelay, s => s.TcpEarlyRetrans = 0, lost: [9, 10]);
        burst.Send(10);
        burst.Net.RunUntil(3);

        var retransmissions = burst.Retransmissions();
        // The RTO restarts with the last ACK (of segment 8, at 1 s + RTT): srtt + 200 ms later.
        Assert.Equal(1.0 + burst.Rtt + burst.Rtt + 0.2, retransmissions[0].At.TotalSeconds, 9);
        Assert.StartsWith("RTO: retransmit 1", retransmissions[0].Comment);
        // In Loss state the ACK of the head clocks out the other segment marked lost.
        Assert.Equal(retransmissions[0].At.TotalSeconds + burst.Rtt, retransmissions[1].At.TotalSeconds, 9);
        Assert.StartsWith("RTO recovery: retransmit of a segment marked lost", retransmissions[1].Comment);
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 0, 1), (server[Mib.TcpExtTCPTimeouts], server[Mib.TcpExtTCPLossProbes], server[Mib.TcpExtTCPSlowStartRetrans]));
    }

    // ----- RTO recovery (Loss state) -----

    [Fact]
    public void After_an_RTO_the_segments_marked_lost_go_out_in_slow_start_one_two_four_per_round_trip()
    {
        var burst = new Burst(D, s => s.TcpEarlyRetrans = 0, lost: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(5);

        var retransmissions = burst.Retransmissions();
        double rto = 1.0 + burst.Rtt + 0.2;
        // cwnd restarts from 1 and grows by one per ACK: 1, 2, 4, then the 3 left.
        int[] perRound = Enumerable.Range(0, 4).Select(k => retransmissions.Count(r => Math.Abs(r.At.TotalSeconds - (rto + k * burst.Rtt)) < 1e-9)).ToArray();
        Assert.Equal([1, 2, 4, 3], perRound);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 9), (server[Mib.TcpExtTCPTimeouts], server[Mib.TcpExtTCPSlowStartRetrans]));
        // ssthresh was set once, from the cwnd of 10 when the RTO fired: CUBIC's 717/1024.
        Assert.Equal(10 * 717 / 1024, burst.Server.SlowStartThreshold);
    }

    // ----- Spurious retransmissions and undo -----

    /// <summary>
    /// The client's ACKs sent during [1 s, 1.1 s) take 500 ms longer: the server's RTO (at 1.3 s)
    /// fires although nothing was lost. Tail loss probes are off: one would go first (at 1.202 s)
    /// and its ACK would make the RTO unnecessary.
    /// </summary>
    private static Burst DelayedAcks(Action<Sysctls> sysctls) =>
        new(D, s => { s.TcpEarlyRetrans = 0; sysctls(s); }, faults: [FaultRule.Parse("delay 500ms dir=egress after=1s until=1100ms")]);

    [Fact]
    public void F_RTO_proves_an_RTO_spurious_when_never_retransmitted_data_is_ACKed_and_undoes_the_reduction()
    {
        // No timestamps and no D-SACK: only F-RTO (RFC 5682) can tell.
        var burst = DelayedAcks(s => { s.TcpTimestamps = 0; s.TcpDsack = false; });
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(3);

        var retransmission = Assert.Single(burst.Retransmissions());
        Assert.Equal(1.3, retransmission.At.TotalSeconds, 9);
        Assert.StartsWith("RTO: retransmit 1", retransmission.Comment);
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 1, 1), (server[Mib.TcpExtTCPTimeouts], server[Mib.TcpExtTCPSpuriousRTOs], server[Mib.TcpExtTCPLossUndo]));
        // Undone: cwnd 10 and ssthresh infinite as before the timeout, then the same ACK, which
        // acknowledged all 10 segments, grew cwnd in slow start to 20.
        Assert.Equal((20, int.MaxValue), (burst.Server.CongestionWindow, burst.Server.SlowStartThreshold));
        Assert.Equal(CongestionState.Open, burst.Server.CongestionState);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
    }

    [Fact]
    public void With_F_RTO_off_the_spurious_RTO_keeps_its_reduction()
    {
        var burst = DelayedAcks(s => { s.TcpTimestamps = 0; s.TcpDsack = false; s.TcpFrto = 0; });
        burst.Send(10);
        burst.Net.RunUntil(3);

        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 0, 0), (server[Mib.TcpExtTCPTimeouts], server[Mib.TcpExtTCPSpuriousRTOs], server[Mib.TcpExtTCPLossUndo]));
        Assert.Equal(10 * 717 / 1024, burst.Server.SlowStartThreshold);
    }

    [Fact]
    public void With_timestamps_the_echo_of_the_original_transmission_undoes_a_spurious_RTO()
    {
        var burst = DelayedAcks(s => s.TcpDsack = false);
        burst.Send(10);
        burst.Net.RunUntil(3);

        // The duplicate ACK for the retransmission echoes the original's TSval, older than the retransmission (Eifel).
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 1, 0), (server[Mib.TcpExtTCPTimeouts], server[Mib.TcpExtTCPLossUndo], server[Mib.TcpExtTCPSpuriousRTOs]));
        Assert.Equal(int.MaxValue, burst.Server.SlowStartThreshold);
    }

    [Fact]
    public void A_D_SACK_for_a_retransmission_caused_by_reordering_undoes_the_fast_recovery()
    {
        // Segment 3 arrives 20 ms late: three SACKs trigger a (spurious) fast retransmit. No
        // timestamps, so only the D-SACK for the retransmission can prove it unnecessary.
        var burst = new Burst(D, s => s.TcpTimestamps = 0, faults: [FaultRule.Parse("delay 20ms dir=ingress len=1.. nth=3")]);
        byte[] data = burst.Send(10);
        burst.Net.RunUntil(3);

        var retransmission = Assert.Single(burst.Retransmissions());
        Assert.Equal(1.0 + burst.Rtt, retransmission.At.TotalSeconds, 9);
        // The client got the retransmission as a duplicate and said so with a D-SACK below its ACK.
        var dsack = burst.ClientAcks().Single(a => a.Header.Options.SackBlockCount > 0 && a.Header.Options.Sacks[0].Left == retransmission.Seq);
        Assert.True(dsack.Header.Options.Sacks[0].Right <= dsack.Ack);
        Counters server = burst.Net.Server.Counters;
        Assert.Equal((1, 1, 1), (server[Mib.TcpExtTCPSackRecovery], server[Mib.TcpExtTCPDSACKRecv], server[Mib.TcpExtTCPDSACKUndo]));
        Assert.Equal(int.MaxValue, burst.Server.SlowStartThreshold);
        Assert.Equal(1, burst.Net.Client.Counters[Mib.TcpExtTCPDSACKOldSent]);
        Assert.Equal(data, Connected.ReadAll(burst.Client));
    }
}
