using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Link;

public class PcapNgWriterTests
{
    private static readonly long Epoch = CaptureTime.UnixNanoseconds(SimulatedEventLoop.DefaultEpoch);

    /// <summary>Three packets on two interfaces: comments (one non-ASCII), none, directions, a cut by snap length.</summary>
    private static readonly (int Interface, long Timestamp, PacketDirection Direction, byte[] Frame, string? Comment)[] Packets =
    [
        (0, Epoch + 1_000_000_123, PacketDirection.Outbound, Frame(60, seed: 1), "connect(): SYN"),
        (1, Epoch + 1_010_000_007, PacketDirection.Inbound, Frame(61, seed: 2), null),
        (0, Epoch + 2_500_000_001, PacketDirection.Unknown, Frame(1514, seed: 3), "RTO: SYN retransmit 1/6, rto 1 s — µ"),
    ];

    private const int SecondInterfaceSnapLength = 1000;

    [Fact]
    public void Starts_with_the_section_header_and_interface_blocks_the_spec_lays_out()
    {
        var file = new MemoryStream();
        using (var writer = new PcapNgWriter(file, leaveOpen: true)) writer.AddInterface("eth0", snapLength: 65535);

        // SHB (section 4.1): type, length 44, magic, version 1.0, section length -1, shb_userappl "TcpLab", end.
        // IDB (section 4.2): type, length 40, LINKTYPE_ETHERNET, snaplen, if_name "eth0", if_tsresol 9, end.
        Assert.Equal(
            "0A0D0D0A" + "2C000000" + "4D3C2B1A" + "0100" + "0000" + "FFFFFFFFFFFFFFFF"
            + "0400" + "0600" + "5463704C6162" + "0000" + "00000000" + "2C000000"
            + "01000000" + "28000000" + "0100" + "0000" + "FFFF0000"
            + "0200" + "0400" + "65746830" + "0900" + "0100" + "09000000" + "00000000" + "28000000",
            Convert.ToHexString(file.ToArray()));
    }

    [Fact]
    public void Our_reader_reads_back_every_byte_timestamp_direction_and_comment()
    {
        byte[] file = WriteSample();

        using var reader = new CaptureFileReader(new MemoryStream(file));
        List<CaptureRecord> records = [.. reader.ReadAll()];

        Assert.Equal(CaptureFileFormat.PcapNg, reader.Format);
        Assert.Equal(["sim:client", "sim:server"], reader.Interfaces.Select(i => i.Name));
        Assert.All(reader.Interfaces, i => Assert.Equal(LinkType.Ethernet, i.LinkType));
        Assert.Equal(Packets.Length, records.Count);
        for (int i = 0; i < Packets.Length; i++)
        {
            var expected = Packets[i];
            CaptureRecord actual = records[i];
            Assert.Equal(expected.Interface, actual.InterfaceIndex);
            Assert.Equal(expected.Timestamp, actual.Timestamp);
            Assert.Equal(expected.Direction, actual.Direction);
            Assert.Equal(expected.Frame, actual.Data);
            Assert.Equal(expected.Frame.Length, actual.OriginalLength);
            Assert.Equal(expected.Comment, actual.Comment);
        }
    }

    [Fact]
    public void Cuts_frames_to_the_snap_length_but_keeps_their_original_length()
    {
        var file = new MemoryStream();
        using (var writer = new PcapNgWriter(file, leaveOpen: true))
        {
            writer.AddInterface("short", snapLength: 64);
            writer.Record(0, Epoch, PacketDirection.Unknown, Frame(1514, seed: 9), comment: null);
        }

        CaptureRecord record = Assert.Single(new CaptureFileReader(new MemoryStream(file.ToArray())).ReadAll());
        Assert.Equal(Frame(1514, seed: 9)[..64], record.Data);
        Assert.Equal(1514, record.OriginalLength);
    }

    [Fact]
    public void Cuts_a_comment_longer_than_an_option_holds_at_a_character_boundary()
    {
        string comment = new string('x', 65534) + "é and more";
        var file = new MemoryStream();
        using (var writer = new PcapNgWriter(file, leaveOpen: true))
        {
            writer.AddInterface("eth0");
            writer.Record(0, Epoch, PacketDirection.Unknown, Frame(60, seed: 1), comment);
        }

        CaptureRecord record = Assert.Single(new CaptureFileReader(new MemoryStream(file.ToArray())).ReadAll());
        // "é" takes two UTF-8 bytes and would end at byte 65536: it is left out whole.
        Assert.Equal(new string('x', 65534), record.Comment);
    }

    [Fact]
    public void Writes_the_same_bytes_every_time()
    {
        Assert.Equal(WriteSample(), WriteSample());
    }

    [Fact]
    public void Recording_allocates_nothing_once_warm()
    {
        using var writer = new PcapNgWriter(Stream.Null);
        int id = writer.AddInterface("eth0");
        byte[] frame = Frame(1514, seed: 4);
        string comment = "delayed ACK, ato 40 ms";
        writer.Record(id, Epoch, PacketDirection.Outbound, frame, comment);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) writer.Record(id, Epoch + i, PacketDirection.Outbound, frame, comment);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    [WiresharkFact]
    public void Tshark_reads_the_file_without_a_warning()
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("sample.pcapng");
        File.WriteAllBytes(path, WriteSample());

        (string stdout, string stderr) = WiresharkTools.Run("tshark", "-r", path);

        Assert.Equal("", stderr);
        Assert.Equal(Packets.Length, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [WiresharkFact]
    public void Tshark_shows_our_timestamps_to_the_nanosecond_and_our_comments()
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("sample.pcapng");
        File.WriteAllBytes(path, WriteSample());

        (string stdout, string stderr) = WiresharkTools.Run("tshark", "-r", path, "-T", "fields",
            "-E", "separator=|", "-e", "frame.time_epoch", "-e", "frame.interface_name", "-e", "frame.len",
            "-e", "frame.cap_len", "-e", "frame.packet_flags_direction", "-e", WiresharkTools.CommentField);

        Assert.Equal("", stderr);
        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(
            Packets.Select(p => string.Join('|',
                WiresharkTools.EpochSeconds(p.Timestamp),
                p.Interface == 0 ? "sim:client" : "sim:server",
                p.Frame.Length,
                Math.Min(p.Frame.Length, p.Interface == 1 ? SecondInterfaceSnapLength : int.MaxValue),
                p.Direction == PacketDirection.Unknown ? "" : $"0x{(int)p.Direction:x8}",
                p.Comment ?? "")),
            lines);
    }

    private static byte[] WriteSample()
    {
        var file = new MemoryStream();
        using (var writer = new PcapNgWriter(file, leaveOpen: true))
        {
            writer.AddInterface("sim:client");
            writer.AddInterface("sim:server", SecondInterfaceSnapLength);
            foreach (var p in Packets) writer.Record(p.Interface, p.Timestamp, p.Direction, p.Frame, p.Comment);
        }
        return file.ToArray();
    }

    /// <summary>An Ethernet/IPv4 frame of <paramref name="length"/> bytes whose payload depends on <paramref name="seed"/>.</summary>
    internal static byte[] Frame(int length, byte seed)
    {
        var frame = new byte[length];
        byte[] header = Convert.FromHexString("0200000000020200000000010800");
        header.CopyTo(frame, 0);
        for (int i = header.Length; i < length; i++) frame[i] = (byte)(seed * 31 + i);
        return frame;
    }
}
