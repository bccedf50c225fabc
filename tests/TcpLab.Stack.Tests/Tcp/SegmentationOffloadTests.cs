using System.Buffers.Binary;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// TSO on send: over a link that splits superframes (<see cref="SoftwareGsoLink"/>, which does what
/// the kernel does behind a vnet TAP), runs of full segments leave as superframes with the
/// headers and metadata the kernel needs, and once split they are exactly the segments the
/// stack sends without TSO.
/// </summary>
public class SegmentationOffloadTests
{
    private static readonly WireOptions Path = WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(1), RateBitsPerSecond = 1_000_000_000 };

    /// <summary>A bulk transfer client to server whose writes end every <paramref name="writeSize"/> bytes (so PSH points fall inside bursts).</summary>
    private static (TwoHosts Net, TcpConnection Client, BulkSink Sink, SoftwareGsoLink? Gso) Transfer(bool tso, int bytes, Func<int, int> writeSize)
    {
        SoftwareGsoLink? gso = null;
        var net = new TwoHosts(seed: 7, wire: Path, clientLink: tso ? link => gso = new SoftwareGsoLink(link) : null);
        var (client, server) = Connected.Open(net);
        var sink = new BulkSink(server, hash: true);
        var block = new byte[writeSize(client.SendMss)];
        new DeterministicRandom(7).NextBytes(block);
        new BulkSource(client, block, bytes);
        net.Loop.RunFor(TimeSpan.FromSeconds(30), () => server.EndOfStream && server.ReadableBytes == 0);
        Assert.Equal(bytes, sink.BytesRead);
        return (net, client, sink, gso);
    }

    private static string WithoutComment(LoggedSegment s) => s.ToString().Split("  #")[0];

    [Theory]
    [InlineData(1 << 20)]   // bulk: bursts of full segments
    [InlineData(-3)]        // writes of 3 MSS + 100 bytes: a push point inside most bursts
    public void Split_superframes_are_exactly_the_segments_sent_without_TSO(int writeSize)
    {
        Func<int, int> size = mss => writeSize > 0 ? writeSize : -writeSize * mss + 100;
        var plain = Transfer(tso: false, 4 << 20, size);
        var tso = Transfer(tso: true, 4 << 20, size);

        Assert.Equal(0, plain.Client.SuperframesOut);
        Assert.True(tso.Client.SuperframesOut > 50, $"{tso.Client.SuperframesOut} superframes");
        Assert.Equal(tso.Client.SuperframesOut, tso.Gso!.SuperframeCount);
        Assert.Equal(plain.Sink.Sha256, tso.Sink.Sha256);
        // Same segments (times, sequence numbers, flags, windows, options, lengths) in the same order, both ways.
        Assert.Equal(plain.Net.Log.Segments.Select(WithoutComment), tso.Net.Log.Segments.Select(WithoutComment));
        // Each segment was accounted for as itself: one wire segment per segment counted.
        Assert.Equal(tso.Client.SegmentsOut, tso.Net.Log.From(TwoHosts.ClientIp).Count());
        Assert.Equal(plain.Client.SegmentsOut, tso.Client.SegmentsOut);
        Assert.Equal(plain.Net.Client.Counters[Mib.TcpOutSegs], tso.Net.Client.Counters[Mib.TcpOutSegs]);
    }

    [Fact]
    public void A_superframe_has_one_header_for_the_whole_run_and_what_the_kernel_needs_to_split_it()
    {
        var (_, client, _, gso) = Transfer(tso: true, 4 << 20, mss => 3 * mss + 100);
        int mss = client.SendMss;
        int maxPayload = 65535 - 20 - 60;
        bool sawPush = false;
        foreach ((byte[] frame, OffloadInfo offload) in gso!.Superframes)
        {
            Assert.Equal(GsoKind.TcpV4, offload.Gso);
            Assert.Equal(mss, offload.GsoSize);                       // mss_now: the timestamp option is already out of it
            Assert.True(offload.NeedsChecksum);
            Assert.Equal(14 + 20, offload.ChecksumStart);
            Assert.Equal(16, offload.ChecksumOffset);
            Assert.Equal(WireError.None, EthernetFrame.TryParse(frame, out EthernetFrame eth));
            Assert.Equal(WireError.None, Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip));
            Assert.Equal(frame.Length - 14, ip.TotalLength);           // the whole superframe
            Assert.True(ip.DontFragment);
            Assert.Equal(WireError.None, TcpSegment.TryParse(ip.Payload, out TcpSegment tcp));
            Assert.Equal(14 + 20 + tcp.HeaderLength, offload.HeaderLength);
            int payload = tcp.Payload.Length;
            Assert.InRange(payload, mss + 1, maxPayload);
            // Only the last segment may be short, and only it may carry PSH; flags are ACK and maybe PSH.
            Assert.True(tcp.Flags is TcpFlags.Ack or (TcpFlags.Ack | TcpFlags.Psh), $"flags {tcp.Flags}");
            sawPush |= (tcp.Flags & TcpFlags.Psh) != 0;
            // The checksum field holds the pseudo-header sum over the full length (tcp_v4_send_check).
            uint pseudo = InternetChecksum.PseudoHeaderSum(ip.Source, ip.Destination, (byte)IpProtocol.Tcp, ip.Payload.Length);
            Assert.Equal((ushort)InternetChecksum.Fold(pseudo), BinaryPrimitives.ReadUInt16BigEndian(ip.Payload[16..]));
        }
        Assert.True(sawPush, "no superframe ended at a push point");
    }

    [Fact]
    public void Without_the_offload_or_behind_a_stage_that_must_see_segments_TCP_sends_no_superframes()
    {
        var plain = Transfer(tso: false, 1 << 20, _ => 1 << 20);
        Assert.Equal(0, plain.Client.SuperframesOut);

        var loop = new SimulatedEventLoop();
        var wire = new SimulatedWire(loop, WireOptions.Default);
        var gso = new SoftwareGsoLink(wire.CreatePort("a"));
        const LinkOffloads tso = LinkOffloads.TxTcpSegmentation;
        Assert.Equal(tso, gso.Info.Offloads & tso);
        var random = new DeterministicRandom(1);
        // No rules, no capture: the fault stage is transparent.
        Assert.Equal(tso, new FaultStage(loop, new SoftwareGsoLink(wire.CreatePort("b")), [], random).Info.Offloads & tso);
        // Rules count and match wire segments; captures show them: neither passes TSO on.
        var withRule = new FaultStage(loop, new SoftwareGsoLink(wire.CreatePort("c")), [FaultRule.Parse("drop nth=5")], random);
        Assert.Equal(LinkOffloads.TxChecksum, withRule.Info.Offloads);
        Assert.Equal(LinkOffloads.TxChecksum, new CaptureStage(loop, new SoftwareGsoLink(wire.CreatePort("d")), new FrameLog()).Info.Offloads);
        Assert.Equal(LinkOffloads.TxChecksum, new FaultStage(loop, new SoftwareGsoLink(wire.CreatePort("e")), [], random, new FrameLog()).Info.Offloads);
    }

    [Fact]
    public void A_steady_bulk_transfer_with_TSO_allocates_nothing_per_segment()
    {
        SteadyBulkTransfer steady = SteadyBulkTransfer.Measure(new TwoHosts(
            wire: WireOptions.Default with { Delay = TimeSpan.FromMicroseconds(50), RateBitsPerSecond = 1_000_000_000 },
            capture: false, clientLink: link => new SoftwareGsoLink(link, keepCopies: false)));

        Assert.True(steady.Superframes > 100, $"{steady.Superframes} superframes");
        Assert.Equal(0, steady.Allocated);
        Assert.True(steady.BytesRead > 0);
    }
}
