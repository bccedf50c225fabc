using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// The receiver's side of loss recovery: duplicate ACKs for out-of-order data, SACK blocks in
/// RFC 2018's order (the block with the latest segment first), D-SACKs for duplicates (RFC 2883),
/// an immediate ACK when a hole is filled, SACK compression, and PAWS (RFC 7323).
/// </summary>
public class SackReceiverTests
{
    private static readonly TimeSpan D = TimeSpan.FromMilliseconds(50);

    /// <summary>Segment k's sequence range, from the first data segment the server sent.</summary>
    private static (uint Left, uint Right) SegmentRange(Burst burst, int first, int last)
    {
        uint start = burst.ServerData()[0].Seq;
        int mss = burst.Server.SendMss;
        return (start + (uint)((first - 1) * mss), start + (uint)(last * mss));
    }

    private static (uint, uint)[] Blocks(LoggedSegment ack) => ack.Header.Options.Sacks.ToArray().Select(b => (b.Left, b.Right)).ToArray();

    [Fact]
    public void Each_out_of_order_segment_draws_a_duplicate_ACK_whose_first_SACK_block_holds_it()
    {
        var burst = new Burst(D, lost: [3, 6]);
        burst.Send(10);
        burst.Net.RunUntil(1.06);

        var dupAcks = burst.ClientAcks().Skip(2).ToList();   // after the ACKs of segments 1 and 2
        Assert.Equal(6, dupAcks.Count);
        Assert.All(dupAcks, a => Assert.Equal(SegmentRange(burst, 3, 3).Left, a.Ack));
        Assert.Equal(
            [
                [SegmentRange(burst, 4, 4)],
                [SegmentRange(burst, 4, 5)],
                [SegmentRange(burst, 7, 7), SegmentRange(burst, 4, 5)],
                [SegmentRange(burst, 7, 8), SegmentRange(burst, 4, 5)],
                [SegmentRange(burst, 7, 9), SegmentRange(burst, 4, 5)],
                [SegmentRange(burst, 7, 10), SegmentRange(burst, 4, 5)],
            ],
            dupAcks.Select(Blocks));
        Assert.Equal(Enumerable.Range(1, 6).Select(n => $"duplicate ACK #{n} (out-of-order data)"), dupAcks.Select(a => a.Comment));
        Assert.All(dupAcks, a => Assert.Equal(1.0 + D.TotalSeconds, a.At.TotalSeconds, 9));
        Assert.Equal(6, burst.Net.Client.Counters[Mib.TcpExtTCPOFOQueue]);
    }

    [Fact]
    public void Without_SACK_the_duplicate_ACKs_are_plain_and_keep_the_window_so_they_count_as_duplicates()
    {
        var burst = new Burst(D, s => s.TcpSack = false, lost: [3]);
        burst.Send(10);
        burst.Net.RunUntil(1.06);

        var dupAcks = burst.ClientAcks().Skip(2).ToList();
        Assert.Equal(7, dupAcks.Count);
        Assert.All(dupAcks, a => Assert.Equal((SegmentRange(burst, 3, 3).Left, 0, dupAcks[0].Header.Window),
                                              (a.Ack, a.Header.Options.SackBlockCount, a.Header.Window)));
    }

    [Fact]
    public void The_segment_that_fills_the_hole_is_ACKed_at_once_and_the_SACK_blocks_are_gone()
    {
        var burst = new Burst(D, lost: [3]);
        burst.Send(10);
        burst.Net.RunUntil(3);

        LoggedSegment retransmission = Assert.Single(burst.Retransmissions());
        LoggedSegment ack = burst.ClientAcks().Single(a => a.Ack == SegmentRange(burst, 10, 10).Right);
        Assert.Equal(retransmission.At.TotalSeconds + D.TotalSeconds, ack.At.TotalSeconds, 9);   // RFC 5681 4.2
        Assert.Equal(0, ack.Header.Options.SackBlockCount);
    }

    [Fact]
    public void A_duplicated_segment_is_reported_by_a_D_SACK_below_the_ACK()
    {
        var burst = new Burst(D, faults: [FaultRule.Parse("duplicate 1 dir=ingress len=1.. nth=2")]);
        burst.Send(4);
        burst.Net.RunUntil(2);

        LoggedSegment dsack = burst.ClientAcks().Single(a => a.Header.Options.SackBlockCount > 0);
        Assert.Equal([SegmentRange(burst, 2, 2)], Blocks(dsack));
        Assert.Equal(SegmentRange(burst, 2, 2).Right, dsack.Ack);   // below the ACK: a D-SACK (RFC 2883 4.1)
        Assert.Equal("ACK with a D-SACK for duplicate data", dsack.Comment);
        Assert.Equal(1, burst.Net.Client.Counters[Mib.TcpExtTCPDSACKOldSent]);
        Assert.Equal(1, burst.Net.Server.Counters[Mib.TcpExtTCPDSACKRecv]);
        Assert.Equal(0, burst.Net.Server.Counters[Mib.TcpExtTCPSackRecovery]);   // a duplicate is no loss
    }

    [Fact]
    public void A_duplicate_of_data_held_out_of_order_is_a_D_SACK_inside_the_SACK_block_that_follows_it()
    {
        var burst = new Burst(D, lost: [3], faults: [FaultRule.Parse("duplicate 1 dir=ingress len=1.. nth=5")]);
        burst.Send(6);
        burst.Net.RunUntil(1.06);

        // Arrivals: 1 2 (3 lost) 4 5 5' 6: the copy of 5 is answered with D-SACK {5}, then SACK {4-5}.
        LoggedSegment dsack = burst.ClientAcks().Single(a => a.Header.Options.SackBlockCount == 2);
        Assert.Equal([SegmentRange(burst, 5, 5), SegmentRange(burst, 4, 5)], Blocks(dsack));
        Assert.Equal(1, burst.Net.Client.Counters[Mib.TcpExtTCPDSACKOfoSent]);
        Assert.Equal(1, burst.Net.Client.Counters[Mib.TcpExtTCPOFOMerge]);
        burst.Net.RunUntil(2);
        Assert.Equal(1, burst.Net.Server.Counters[Mib.TcpExtTCPDSACKOfoRecv]);
    }

    [Fact]
    public void After_three_immediate_duplicate_ACKs_further_SACKs_for_the_same_hole_are_compressed_for_up_to_1ms()
    {
        // A small fixed receive buffer: the window is at its clamp, so out-of-order data no longer
        // grows it (which would force quick ACKs), and a first burst uses up the quick-ACK mode.
        var burst = new Burst(D, lost: [23], clientOptions: new TcpSocketOptions { ReceiveBufferSize = 32768 });
        var warmUp = burst.Send(20);
        burst.Net.RunUntil(1.5);
        Assert.Equal(warmUp, Connected.ReadAll(burst.Client));
        burst.Send(14);
        burst.Net.RunUntil(1.56);

        // The 32 KB buffer takes a dozen segments; the third of them (segment 23) is lost, and
        // those after it that fit the buffer are held out of order.
        var flight = burst.ServerData().Where(s => s.At.TotalSeconds >= 1.5).ToList();
        int outOfOrder = (int)burst.Net.Client.Counters[Mib.TcpExtTCPOFOQueue];
        Assert.True(outOfOrder > 6, $"{outOfOrder} segments out of order");
        double arrival = flight[0].At.TotalSeconds + D.TotalSeconds;
        var dupAcks = burst.ClientAcks().Where(a => a.Header.Options.SackBlockCount > 0 && a.At.TotalSeconds > 1.5).ToList();
        Assert.Equal(3, dupAcks.Count(a => Math.Abs(a.At.TotalSeconds - arrival) < 1e-9));
        // The other SACKs for the hole become one ACK 1 ms later (tcp_comp_sack_delay_ns; 5% of the
        // 100 ms RTT is more), which counts those it stood in for, less itself, as compressed.
        LoggedSegment compressed = Assert.Single(dupAcks, a => Math.Abs(a.At.TotalSeconds - (arrival + 0.001)) < 1e-9);
        Assert.Equal(4, dupAcks.Count);
        Assert.Equal(SegmentRange(burst, 24, 23 + outOfOrder), Blocks(compressed)[0]);
        Assert.Equal(outOfOrder - 3 - 1, burst.Net.Client.Counters[Mib.TcpExtTCPAckCompressed]);
    }

    [Fact]
    public void A_segment_with_an_older_timestamp_fails_PAWS_and_draws_a_duplicate_ACK()
    {
        var burst = new Burst(D);
        var injector = new Injector(burst.Net);
        burst.Send(1);
        burst.Net.RunUntil(1.5);
        LoggedSegment last = burst.ServerData()[^1];
        var header = last.Header with { SequenceNumber = last.Seq + (uint)last.Length };
        header.Options.SetTimestamp(last.Header.Options.TsVal - 1000, last.Header.Options.TsEcr);   // a second older
        injector.Send(TwoHosts.ServerIp, TwoHosts.ClientIp, header, new byte[100]);
        burst.Net.RunUntil(1.6);

        Assert.Equal(1, burst.Net.Client.Counters[Mib.TcpExtPAWSEstab]);
        Assert.Equal(1, burst.Net.Client.Counters[DropReason.TcpPaws]);
        Assert.Equal(last.Seq + (uint)last.Length, burst.Client.ReceiveNext.Value);   // the data was not taken
        Assert.Equal("ACK for an unacceptable segment (RFC 9293 3.10.7.4)", burst.ClientAcks()[^1].Comment);
    }
}
