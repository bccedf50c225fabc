using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Link;

public class FaultStageTests
{
    private static readonly MacAddress ClientMac = MacAddress.Parse("02:00:00:00:00:01");
    private static readonly MacAddress ServerMac = MacAddress.Parse("02:00:00:00:00:02");
    private static readonly Ipv4Address Client = Ipv4Address.Parse("10.0.0.1");
    private static readonly Ipv4Address Server = Ipv4Address.Parse("10.0.0.2");
    private const ushort ClientPort = 40000;
    private const ushort ServerPort = 80;

    private readonly SimulatedEventLoop _loop = new();
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(1500);

    /// <summary>The link under the stage: keeps what goes down, hands up what the test injects.</summary>
    private readonly FakeLink _link;

    /// <summary>The stack above the stage: keeps what comes up.</summary>
    private readonly FrameLog _stack;

    public FaultStageTests()
    {
        _link = new FakeLink(_loop);
        _stack = new FrameLog(_loop);
    }

    // ---- selection ----

    [Fact]
    public void Nth_takes_only_that_match()
    {
        FaultStage stage = Stage("drop dir=egress tcp=S nth=2");

        stage.Transmit(Tcp(1, TcpFlags.Syn));
        stage.Transmit(Tcp(100, TcpFlags.Ack));
        for (uint seq = 2; seq <= 4; seq++) stage.Transmit(Tcp(seq, TcpFlags.Syn));

        Assert.Equal([1u, 100, 3, 4], _link.Sent.Select(f => f.Seq));
        Assert.Equal((4L, 1L), (stage.RuleCounters[0].Matched, stage.RuleCounters[0].Affected));
        Assert.Equal((4L, 1L), (stage.Counters.Passed, stage.Counters.Dropped));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Count_takes_the_first_matches_then_the_rule_stops_counting()
    {
        FaultStage stage = Stage("drop tcp=+S count=3");

        for (uint seq = 1; seq <= 5; seq++) stage.Transmit(Tcp(seq, TcpFlags.Syn));

        Assert.Equal([4u, 5], _link.Sent.Select(f => f.Seq));
        Assert.Equal((3L, 3L), (stage.RuleCounters[0].Matched, stage.RuleCounters[0].Affected));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Every_takes_each_kth_match()
    {
        FaultStage stage = Stage("drop every=3");

        for (uint seq = 1; seq <= 9; seq++) stage.Transmit(Tcp(seq));

        Assert.Equal([1u, 2, 4, 5, 7, 8], _link.Sent.Select(f => f.Seq));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void The_time_window_is_half_open_on_the_loop_clock()
    {
        FaultStage stage = Stage("drop after=1s until=2s");
        long[] sendAt = [500_000_000, 1_000_000_000, 1_500_000_000, 1_999_999_999, 2_000_000_000];
        foreach (long ns in sendAt) At(new Instant(ns), () => stage.Transmit(Tcp((uint)(ns / 1_000_000))));
        _loop.RunUntilIdle();

        Assert.Equal([500u, 2000], _link.Sent.Select(f => f.Seq));
        // Frames outside the window are not matches: the rule was not active.
        Assert.Equal(3, stage.RuleCounters[0].Matched);
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Probability_takes_the_expected_share_and_the_seed_replays_it()
    {
        const int Frames = 10_000;
        const double P = 0.1;
        List<uint> dropped = DroppedSequences(seed: 1, Frames, "drop p=0.1");

        // The drops are Binomial(10 000, 0.1): mean 1000, standard deviation sqrt(n p (1 - p)) = 30
        // frames. Five deviations either side (850..1150) holds with probability 1 - 6e-7 for a
        // fair coin, so this fails only for a biased one (a share of 0.085 or 0.115 is already out).
        double sigma = Math.Sqrt(Frames * P * (1 - P));
        Assert.InRange((double)dropped.Count, Frames * P - 5 * sigma, Frames * P + 5 * sigma);
        Assert.Equal(dropped, DroppedSequences(seed: 1, Frames, "drop p=0.1"));
        Assert.NotEqual(dropped, DroppedSequences(seed: 2, Frames, "drop p=0.1"));
    }

    [Fact]
    public void A_rule_draws_from_its_own_stream_so_other_rules_do_not_shift_its_draws()
    {
        List<uint> alone = DroppedSequences(seed: 7, 1000, "drop dir=egress p=0.5");
        // Earlier rules that draw for other frames: SYNs (none are sent) and the ingress direction.
        List<uint> withOthers = DroppedSequences(seed: 7, 1000,
            "delay 1ms tcp=S p=0.3", "drop dir=ingress p=0.5", "drop dir=egress p=0.5");

        Assert.Equal(alone, withOthers);
    }

    /// <summary>Sends <paramref name="frames"/> egress ACKs, each followed by an ingress one, and returns the egress sequences lost.</summary>
    private List<uint> DroppedSequences(ulong seed, int frames, params string[] rules)
    {
        var link = new FakeLink(_loop);
        var stage = new FaultStage(_loop, link, rules.Select(FaultRule.Parse), new DeterministicRandom(seed));
        stage.Attach(_stack);
        for (uint seq = 1; seq <= frames; seq++)
        {
            stage.Transmit(Tcp(seq));
            link.Receive(Tcp(seq, from: Server, sourcePort: ServerPort, to: Client, destinationPort: ClientPort));
        }
        AssertAllBuffersReturned(stage);
        var sent = link.Sent.Select(f => f.Seq).ToHashSet();
        return Enumerable.Range(1, frames).Select(i => (uint)i).Where(seq => !sent.Contains(seq)).ToList();
    }

    // ---- matching ----

    public static TheoryData<string, string, bool> FlagCases()
    {
        // Which of these segments each flag string takes.
        string[] segments = ["S", "S.", ".", "F.", "R", "R.", "P.", "SEW"];
        (string Pattern, string[] Takes)[] table =
        [
            ("S", ["S"]),
            ("S.", ["S."]),
            (".", ["."]),
            ("F.", ["F."]),
            ("R", ["R"]),
            ("P.", ["P."]),
            ("+S", ["S", "S.", "SEW"]),
            ("+F", ["F."]),
            ("+R", ["R", "R."]),
            ("+.", ["S.", ".", "F.", "R.", "P."]),
        ];
        var cases = new TheoryData<string, string, bool>();
        foreach ((string pattern, string[] takes) in table)
        {
            foreach (string segment in segments) cases.Add(pattern, segment, takes.Contains(segment));
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(FlagCases))]
    public void Flags_match_exactly_or_by_containing_all_as_with_a_plus(string pattern, string segmentFlags, bool taken)
    {
        Assert.Equal(taken, Drops($"drop tcp={pattern}", FaultDirection.Egress, Tcp(1, TcpFlagMatch.Parse(segmentFlags).Flags)));
    }

    public static TheoryData<string, FaultDirection, string, bool> EndpointCases() => new()
    {
        { "drop dir=ingress from=10.0.0.2:80", FaultDirection.Ingress, "server:80 -> client", true },
        { "drop dir=ingress from=10.0.0.2:80", FaultDirection.Egress, "server:80 -> client", false },
        { "drop dir=ingress from=10.0.0.2:80", FaultDirection.Ingress, "server:81 -> client", false },
        { "drop dir=ingress from=10.0.0.2:80", FaultDirection.Ingress, "other:80 -> client", false },
        { "drop to=*:80", FaultDirection.Egress, "client -> server:80", true },
        { "drop to=*:80", FaultDirection.Ingress, "server:80 -> client", false },
        { "drop to=10.0.0.2", FaultDirection.Egress, "client -> server:80", true },
        { "drop to=10.0.0.2", FaultDirection.Egress, "ICMP client -> server", true },
        { "drop from=10.0.0.1", FaultDirection.Egress, "ARP who-has server tell client", true },
        { "drop from=10.0.0.2", FaultDirection.Egress, "ARP who-has server tell client", false },
        { "drop to=10.0.0.2", FaultDirection.Egress, "ARP who-has server tell client", true },
        { "drop from=*:40000", FaultDirection.Egress, "ICMP client -> server", false },
        { "drop proto=arp", FaultDirection.Egress, "ARP who-has server tell client", true },
        { "drop proto=arp", FaultDirection.Egress, "client -> server:80", false },
        { "drop proto=icmp", FaultDirection.Egress, "ICMP client -> server", true },
        { "drop proto=icmp", FaultDirection.Egress, "client -> server:80", false },
        { "drop proto=tcp", FaultDirection.Egress, "ICMP client -> server", false },
        { "drop len=0", FaultDirection.Egress, "client -> server:80", true },
        { "drop len=0", FaultDirection.Egress, "100 bytes client -> server:80", false },
        { "drop len=1..", FaultDirection.Egress, "100 bytes client -> server:80", true },
        { "drop len=1..", FaultDirection.Egress, "ICMP client -> server", false },
        { "drop seq=4294967000..1000", FaultDirection.Egress, "client -> server:80", true },
        { "drop seq=2000..3000", FaultDirection.Egress, "client -> server:80", false },
    };

    [Theory]
    [MemberData(nameof(EndpointCases))]
    public void Matches_direction_protocol_addresses_ports_and_payload(string rule, FaultDirection direction, string frame, bool taken)
    {
        PacketBuffer buffer = frame switch
        {
            "server:80 -> client" => Tcp(1000, from: Server, sourcePort: 80, to: Client, destinationPort: ClientPort),
            "server:81 -> client" => Tcp(1000, from: Server, sourcePort: 81, to: Client, destinationPort: ClientPort),
            "other:80 -> client" => Tcp(1000, from: Ipv4Address.Parse("10.0.0.3"), sourcePort: 80, to: Client, destinationPort: ClientPort),
            "client -> server:80" => Tcp(1000),
            "100 bytes client -> server:80" => Tcp(1000, data: 100),
            "ICMP client -> server" => Icmp(Client, Server),
            "ARP who-has server tell client" => Arp(Client, Server),
            _ => throw new ArgumentOutOfRangeException(nameof(frame)),
        };
        Assert.Equal(taken, Drops(rule, direction, buffer));
    }

    /// <summary>Sends one frame through a stage with one rule; true when it did not come out.</summary>
    private bool Drops(string rule, FaultDirection direction, PacketBuffer frame)
    {
        FaultStage stage = Stage(rule);
        if (direction == FaultDirection.Egress) stage.Transmit(frame);
        else _link.Receive(frame);
        AssertAllBuffersReturned(stage);
        return _link.Sent.Count + _stack.Received.Count == 0;
    }

    [Fact]
    public void The_first_rule_that_takes_a_frame_decides_and_later_rules_never_see_it()
    {
        FaultStage stage = Stage("drop tcp=S nth=2", "delay 10ms tcp=+S");

        for (uint seq = 1; seq <= 3; seq++) stage.Transmit(Tcp(seq, TcpFlags.Syn));
        _loop.RunUntilIdle();

        // SYN 2 is the first rule's; SYNs 1 and 3 fall through to the second.
        Assert.Equal([(1u, Ms(10)), (3u, Ms(10))], _link.Sent.Select(f => (f.Seq, f.At)));
        Assert.Equal(2, stage.RuleCounters[1].Matched);
        AssertAllBuffersReturned(stage);
    }

    // ---- actions ----

    [Fact]
    public void Delay_releases_at_the_exact_instant_and_a_later_frame_overtakes()
    {
        FaultStage stage = Stage("delay 200ms tcp=P.");
        stage.Transmit(Tcp(1, TcpFlags.Psh | TcpFlags.Ack, data: 100));
        At(Ms(10), () => stage.Transmit(Tcp(101)));
        _loop.RunUntil(Ms(199));
        Assert.Equal(1, stage.HeldFrames);
        _loop.RunUntilIdle();

        Assert.Equal([(101u, Ms(10)), (1u, Ms(200))], _link.Sent.Select(f => (f.Seq, f.At)));
        Assert.Equal(1, stage.Counters.Delayed);
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Delayed_frames_leave_in_deadline_order_and_those_due_together_in_arrival_order()
    {
        FaultStage stage = Stage("delay 300ms seq=1", "delay 100ms seq=2..3", "delay 50ms dir=ingress");
        for (uint seq = 1; seq <= 3; seq++) stage.Transmit(Tcp(seq));
        At(Ms(20), () => _link.Receive(Tcp(9, from: Server, sourcePort: ServerPort, to: Client, destinationPort: ClientPort)));
        _loop.RunUntilIdle();

        Assert.Equal([(2u, Ms(100)), (3u, Ms(100)), (1u, Ms(300))], _link.Sent.Select(f => (f.Seq, f.At)));
        // A frame held on its way in reaches the stack stamped with when it came out.
        FrameRecord received = Assert.Single(_stack.Received);
        Assert.Equal((9u, Ms(70), Ms(70)), (received.Seq, received.At, received.Timestamp));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Duplicate_sends_copies_right_behind_the_frame_marked_with_the_rule()
    {
        FaultStage stage = Stage("drop tcp=S", "duplicate 2 tcp=P.");
        var cause = new PacketCause(CauseCode.TcpData, 100);

        stage.Transmit(Tcp(1, TcpFlags.Psh | TcpFlags.Ack, data: 100, cause: cause));
        stage.Transmit(Tcp(101));

        var duplicate = new PacketCause(CauseCode.FaultDuplicate, 2);
        Assert.Equal([(1u, cause), (1u, duplicate), (1u, duplicate), (101u, new PacketCause())], _link.Sent.Select(f => (f.Seq, f.Cause)));
        Assert.All(_link.Sent.Take(3), f => Assert.Equal(_link.Sent[0].Bytes, f.Bytes));
        Assert.Equal((1L, 1L), (stage.Counters.Duplicated, stage.RuleCounters[1].Affected));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Reorder_1_swaps_a_frame_with_the_next_one()
    {
        FaultStage stage = Stage("reorder 1 tcp=P. nth=1");

        for (uint seq = 1; seq <= 3; seq++) stage.Transmit(Tcp(seq, TcpFlags.Psh | TcpFlags.Ack, data: 10));

        Assert.Equal([2u, 1, 3], _link.Sent.Select(f => f.Seq));
        Assert.All(_link.Sent, f => Assert.Equal(Instant.Zero, f.At));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Reorder_2_lets_two_frames_pass_first()
    {
        FaultStage stage = Stage("reorder 2 nth=1");

        for (uint seq = 1; seq <= 4; seq++) stage.Transmit(Tcp(seq));

        Assert.Equal([2u, 3, 1, 4], _link.Sent.Select(f => f.Seq));
        Assert.Equal(1, stage.Counters.Reordered);
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Reorder_counts_frames_of_its_own_direction_only_and_gives_up_at_its_timeout()
    {
        FaultStage stage = Stage("reorder 2 dir=egress nth=1 timeout=50ms");
        stage.Transmit(Tcp(1));
        for (uint seq = 10; seq <= 12; seq++) _link.Receive(Tcp(seq, from: Server, sourcePort: ServerPort, to: Client, destinationPort: ClientPort));
        At(Ms(10), () => stage.Transmit(Tcp(2)));
        _loop.RunUntilIdle();

        Assert.Equal([(2u, Ms(10)), (1u, Ms(50))], _link.Sent.Select(f => (f.Seq, f.At)));
        Assert.Equal([10u, 11, 12], _stack.Received.Select(f => f.Seq));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Reordering_also_works_on_the_way_in()
    {
        FaultStage stage = Stage("reorder 1 dir=ingress tcp=P. nth=1");

        for (uint seq = 1; seq <= 3; seq++)
            _link.Receive(Tcp(seq, TcpFlags.Psh | TcpFlags.Ack, data: 10, from: Server, sourcePort: ServerPort, to: Client, destinationPort: ClientPort));

        Assert.Equal([2u, 1, 3], _stack.Received.Select(f => f.Seq));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Corrupt_inverts_one_byte_of_the_IP_payload_so_IP_accepts_it_and_TCP_rejects_it()
    {
        FaultStage stage = Stage("corrupt tcp=P.");
        var originals = new List<byte[]>();
        for (uint seq = 1; seq <= 300; seq++)
        {
            PacketBuffer frame = Tcp(seq, TcpFlags.Psh | TcpFlags.Ack, data: 100);
            originals.Add(frame.Span.ToArray());
            stage.Transmit(frame);
        }

        var flipped = new HashSet<int>();
        for (int i = 0; i < originals.Count; i++)
        {
            FrameRecord sent = _link.Sent[i];
            int[] changed = Enumerable.Range(0, originals[i].Length).Where(b => sent.Bytes[b] != originals[i][b]).ToArray();
            int at = Assert.Single(changed);
            Assert.Equal((byte)~originals[i][at], sent.Bytes[at]);
            Assert.InRange(at, EthernetFrame.HeaderLength + Ipv4Header.Length, sent.Bytes.Length - 1);
            flipped.Add(at);

            Assert.Equal(WireError.None, EthernetFrame.TryParse(sent.Bytes, out EthernetFrame ethernet));
            Assert.Equal(WireError.None, Ipv4Packet.TryParse(ethernet.Payload, out Ipv4Packet ip));
            Assert.Equal(WireError.None, TcpSegment.TryParse(ip.Payload, out TcpSegment tcp));
            Assert.False(tcp.HasValidChecksum(ip.Source, ip.Destination));
            Assert.Equal(new PacketCause(CauseCode.FaultCorrupt, 1), sent.Cause);
        }
        // The byte is drawn over the whole segment (120 bytes), not always the same one.
        Assert.True(flipped.Count > 80, $"only {flipped.Count} distinct offsets");
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Corrupt_at_an_offset_into_the_IP_header_fails_the_IP_checksum()
    {
        FaultStage stage = Stage("corrupt at=8");

        stage.Transmit(Tcp(1));

        byte[] sent = Assert.Single(_link.Sent).Bytes;
        ReadOnlySpan<byte> datagram = sent.AsSpan(EthernetFrame.HeaderLength);
        Assert.Equal(WireError.BadChecksum, Ipv4Packet.TryParse(datagram, out _));
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(datagram, out Ipv4Packet ip, verifyChecksum: false));
        Assert.Equal(Ipv4Header.DefaultTtl ^ 0xFF, ip.Ttl);
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void Corrupt_finishes_a_checksum_left_to_the_link_and_clears_a_verified_mark()
    {
        FaultStage stage = Stage("corrupt at=40");
        // Egress with checksum offload: the field holds only the pseudo-header sum.
        PacketBuffer partial = Tcp(1, TcpFlags.Psh | TcpFlags.Ack, data: 100);
        TcpHeader.WritePseudoHeaderChecksum(partial.Span[34..], Client, Server);
        partial.Offload = new OffloadInfo { NeedsChecksum = true, ChecksumStart = 34, ChecksumOffset = 16 };
        // Ingress from a link that verified the checksum.
        PacketBuffer verified = Tcp(2, TcpFlags.Psh | TcpFlags.Ack, data: 100, from: Server, sourcePort: ServerPort, to: Client, destinationPort: ClientPort);
        verified.Offload.ChecksumVerified = true;

        stage.Transmit(partial);
        _link.Receive(verified);

        FrameRecord sent = Assert.Single(_link.Sent);
        Assert.False(sent.Offload.NeedsChecksum);
        Assert.False(TcpChecksumValid(sent.Bytes));
        // Inverting the byte back gives a correct segment: the checksum was finished over the original data.
        sent.Bytes[EthernetFrame.HeaderLength + 40] ^= 0xFF;
        Assert.True(TcpChecksumValid(sent.Bytes));
        FrameRecord received = Assert.Single(_stack.Received);
        Assert.False(received.Offload.ChecksumVerified);
        Assert.False(TcpChecksumValid(received.Bytes));
        AssertAllBuffersReturned(stage);
    }

    private static bool TcpChecksumValid(byte[] frame)
    {
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(frame.AsSpan(EthernetFrame.HeaderLength), out Ipv4Packet ip));
        Assert.Equal(WireError.None, TcpSegment.TryParse(ip.Payload, out TcpSegment tcp));
        return tcp.HasValidChecksum(ip.Source, ip.Destination);
    }

    [Fact]
    public void Without_a_handler_frames_coming_up_are_released_even_after_a_hold()
    {
        var stage = new FaultStage(_loop, _link, [FaultRule.Parse("delay 5ms nth=1")], new DeterministicRandom(1));

        _link.Receive(Tcp(1));
        _link.Receive(Tcp(2));
        _loop.RunUntilIdle();

        AssertAllBuffersReturned(stage);
    }

    // ---- capture ----

    [Fact]
    public void Records_every_frame_when_it_is_seen_with_its_cause_and_verdict()
    {
        var file = new MemoryStream();
        var capture = new PcapNgWriter(file, leaveOpen: true);
        var stage = new FaultStage(_loop, _link,
            [
                FaultRule.Parse("drop dir=egress tcp=S nth=2 name=\"client SYN loss\""),
                FaultRule.Parse("delay 200ms dir=ingress tcp=S."),
                FaultRule.Parse("corrupt at=40 tcp=P."),
            ],
            new DeterministicRandom(1), capture, "sim:faults");
        stage.Attach(_stack);
        var expectedBytes = new List<byte[]>();
        void Send(Instant at, PacketBuffer frame, FaultDirection direction) => At(at, () =>
        {
            expectedBytes.Add(frame.Span.ToArray());
            if (direction == FaultDirection.Egress) stage.Transmit(frame);
            else _link.Receive(frame);
        });

        Send(Instant.Zero, Tcp(1, TcpFlags.Syn, cause: new PacketCause(CauseCode.TcpSyn)), FaultDirection.Egress);
        Send(Ms(1000), Tcp(1, TcpFlags.Syn, cause: new PacketCause(CauseCode.TcpSynRetransmit, 1, 6, 1000)), FaultDirection.Egress);
        Send(Ms(3000), Tcp(1, TcpFlags.Syn, cause: new PacketCause(CauseCode.TcpSynRetransmit, 2, 6, 2000)), FaultDirection.Egress);
        Send(Ms(3010), Tcp(500, TcpFlags.Syn | TcpFlags.Ack, from: Server, sourcePort: ServerPort, to: Client, destinationPort: ClientPort), FaultDirection.Ingress);
        Send(Ms(3300), Tcp(2, TcpFlags.Psh | TcpFlags.Ack, data: 100, cause: new PacketCause(CauseCode.TcpData, 100)), FaultDirection.Egress);
        _loop.RunUntilIdle();
        capture.Dispose();

        long epoch = CaptureTime.UnixNanoseconds(SimulatedEventLoop.DefaultEpoch);
        using var reader = new CaptureFileReader(new MemoryStream(file.ToArray()));
        List<CaptureRecord> records = [.. reader.ReadAll()];
        Assert.Equal("sim:faults", Assert.Single(reader.Interfaces).Name);
        Assert.Equal(
        [
            (0L, PacketDirection.Outbound, "connect(): SYN"),
            (1000L, PacketDirection.Outbound, "RTO: SYN retransmit 1/6, rto 1 s | dropped by rule 1 'client SYN loss' (match 2)"),
            (3000L, PacketDirection.Outbound, "RTO: SYN retransmit 2/6, rto 2 s"),
            (3010L, PacketDirection.Inbound, "delayed 200ms by rule 2 'delay 200ms dir=ingress tcp=S.' (match 1)"),
            (3300L, PacketDirection.Outbound,
                "data, 100 bytes | corrupted: byte 40 after the Ethernet header inverted by rule 3 'corrupt at=40 tcp=P.' (match 1)"),
        ],
        records.Select(r => ((r.Timestamp - epoch) / 1_000_000, r.Direction, r.Comment)));
        // Recorded as seen, before the fault: the corrupted frame shows its original bytes.
        Assert.Equal(expectedBytes, records.Select(r => r.Data));
        Assert.Equal([(1u, Ms(0)), (1u, Ms(3000)), (2u, Ms(3300))], _link.Sent.Select(f => (f.Seq, f.At)));
        Assert.Equal([(500u, Ms(3210))], _stack.Received.Select(f => (f.Seq, f.At)));
        AssertAllBuffersReturned(stage);
    }

    [Fact]
    public void An_invalid_rule_is_refused_when_the_stage_is_built()
    {
        var error = Assert.Throws<FaultRuleFormatException>(() =>
            new FaultStage(_loop, _link, [new FaultRule(new DropAction()) { Nth = 2, Every = 2 }], new DeterministicRandom(1)));
        Assert.Equal("'every=2': nth and every exclude each other: nth takes one match, every takes each k-th", error.Message);
    }

    // ---- cost ----

    [Fact]
    public void Steady_state_frames_allocate_nothing_whatever_their_fate()
    {
        var link = new CountingLink();
        var stage = new FaultStage(_loop, link,
            new[] { "drop every=5", "delay 3ms every=4", "reorder 1 every=3", "duplicate 1 every=7", "corrupt every=2" }
                .Select(FaultRule.Parse),
            new DeterministicRandom(1));
        PacketBuffer model = Tcp(1, TcpFlags.Psh | TcpFlags.Ack, data: 100);
        byte[] template = model.Span.ToArray();
        model.Release();
        void Run(int frames)
        {
            for (int i = 0; i < frames; i++)
            {
                PacketBuffer frame = _pool.Rent();
                template.CopyTo(frame.Append(template.Length));
                stage.Transmit(frame);
                _loop.RunFor(TimeSpan.FromMilliseconds(1));
            }
        }

        Run(2000); // warm-up: pool, heap and timer wheel reach their working size
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(2000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        _loop.RunUntilIdle();
        Assert.True(link.Frames > 3000);
        AssertAllBuffersReturned(stage);
    }

    // ---- helpers ----

    private FaultStage Stage(params string[] rules)
    {
        var stage = new FaultStage(_loop, _link, rules.Select(FaultRule.Parse), new DeterministicRandom(1));
        stage.Attach(_stack);
        return stage;
    }

    private void At(Instant when, Action action) => _loop.CreateTimer(action).Arm(when);

    private static Instant Ms(long milliseconds) => Instant.FromMilliseconds(milliseconds);

    /// <summary>Nothing held, and every buffer back in its pool (a second release would have thrown).</summary>
    private void AssertAllBuffersReturned(FaultStage stage)
    {
        Assert.Equal(0, stage.HeldFrames);
        Assert.Equal(_pool.Allocated, _pool.Available);
    }

    /// <summary>A TCP segment from client:40000 to server:80 unless told otherwise, with <paramref name="data"/> bytes of payload.</summary>
    private PacketBuffer Tcp(uint seq, TcpFlags flags = TcpFlags.Ack, int data = 0,
                             Ipv4Address? from = null, ushort sourcePort = ClientPort,
                             Ipv4Address? to = null, ushort destinationPort = ServerPort, PacketCause cause = default)
    {
        Ipv4Address source = from ?? Client, destination = to ?? Server;
        var header = new TcpHeader
        {
            SourcePort = sourcePort,
            DestinationPort = destinationPort,
            SequenceNumber = seq,
            AcknowledgmentNumber = (flags & TcpFlags.Ack) != 0 ? 7777u : 0,
            Flags = flags,
            Window = 65535,
        };
        int segmentLength = header.Length + data;
        PacketBuffer frame = _pool.Rent();
        Span<byte> bytes = frame.Append(EthernetFrame.HeaderLength + Ipv4Header.Length + segmentLength);
        bool fromClient = source == Client;
        EthernetFrame.WriteHeader(bytes, fromClient ? ServerMac : ClientMac, fromClient ? ClientMac : ServerMac, EtherType.Ipv4);
        new Ipv4Header(source, destination, IpProtocol.Tcp, segmentLength).Write(bytes[EthernetFrame.HeaderLength..]);
        Span<byte> segment = bytes[(EthernetFrame.HeaderLength + Ipv4Header.Length)..];
        int headerLength = header.Write(segment);
        for (int i = 0; i < data; i++) segment[headerLength + i] = (byte)(seq + i);
        TcpHeader.WriteChecksum(segment, source, destination);
        frame.Cause = cause;
        return frame;
    }

    private PacketBuffer Icmp(Ipv4Address from, Ipv4Address to)
    {
        byte[] message = Support.Frames.IcmpEcho(IcmpType.EchoRequest, 1, 1, new byte[32]);
        return Rent(Support.Frames.Ipv4(ServerMac, ClientMac, new Ipv4Header(from, to, IpProtocol.Icmp, 0), message));
    }

    private PacketBuffer Arp(Ipv4Address sender, Ipv4Address target) =>
        Rent(Support.Frames.Arp(new ArpPacket(ArpOperation.Request, ClientMac, sender, MacAddress.Zero, target), MacAddress.Broadcast));

    private PacketBuffer Rent(byte[] bytes)
    {
        PacketBuffer frame = _pool.Rent();
        bytes.CopyTo(frame.Append(bytes.Length));
        return frame;
    }

    /// <summary>A frame as it left the stage: when, its TCP sequence (0 if none), cause, offload state and bytes.</summary>
    private sealed record FrameRecord(Instant At, Instant Timestamp, uint Seq, PacketCause Cause, OffloadInfo Offload, byte[] Bytes)
    {
        public static FrameRecord Of(EventLoop loop, PacketBuffer frame)
        {
            byte[] bytes = frame.Span.ToArray();
            uint seq = 0;
            if (EthernetFrame.TryParse(bytes, out EthernetFrame ethernet) == WireError.None
                && Ipv4Packet.TryParse(ethernet.Payload, out Ipv4Packet ip, verifyChecksum: false) == WireError.None
                && ip.Protocol == IpProtocol.Tcp
                && TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) == WireError.None)
                seq = tcp.SequenceNumber;
            return new FrameRecord(loop.Now, frame.Timestamp, seq, frame.Cause, frame.Offload, bytes);
        }
    }

    /// <summary>The stage's inner link: keeps what is transmitted, and injects frames as if they arrived.</summary>
    private sealed class FakeLink(EventLoop loop) : ILink
    {
        private IFrameHandler? _handler;

        public LinkInfo Info { get; } = new("fake0", 1500);

        public List<FrameRecord> Sent { get; } = [];

        public void Attach(IFrameHandler handler) => _handler = handler;

        public void Transmit(PacketBuffer frame)
        {
            Sent.Add(FrameRecord.Of(loop, frame));
            frame.Release();
        }

        public void Receive(PacketBuffer frame)
        {
            frame.Timestamp = loop.Now;
            _handler!.OnFrame(frame);
        }
    }

    /// <summary>The stack above the stage: keeps every frame that comes up.</summary>
    private sealed class FrameLog(EventLoop loop) : IFrameHandler
    {
        public List<FrameRecord> Received { get; } = [];

        public void OnFrame(PacketBuffer frame)
        {
            Received.Add(FrameRecord.Of(loop, frame));
            frame.Release();
        }
    }

    /// <summary>An inner link that only counts, so the allocation test measures the stage alone.</summary>
    private sealed class CountingLink : ILink
    {
        public LinkInfo Info { get; } = new("count0", 1500);

        public long Frames { get; private set; }

        public void Attach(IFrameHandler handler) { }

        public void Transmit(PacketBuffer frame)
        {
            Frames++;
            frame.Release();
        }
    }
}
