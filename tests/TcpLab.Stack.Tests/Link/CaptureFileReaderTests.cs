using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using TcpLab.Stack.Link.Capture;

namespace TcpLab.Stack.Tests.Link;

public class CaptureFileReaderTests
{
    /// <summary>Two packets as text2pcap reads them: a date with nanoseconds, then a hex dump.</summary>
    private const string HexDump = """
        2026-01-01 00:00:01.123456789
        0000  ff ff ff ff ff ff 02 00 00 00 00 01 08 00 45 00
        0010  00 14 00 00 00 00 40 00 00 00 0a 00 00 01 0a 00
        0020  00 02

        2026-01-01 00:00:02.000000001
        0000  02 00 00 00 00 01 02 00 00 00 00 02 08 06 00 01
        0010  08 00 06 04 00 02

        """;

    private static readonly long[] HexDumpTimestamps = [1_767_225_601_123_456_789, 1_767_225_602_000_000_001];

    private static readonly byte[][] HexDumpFrames =
    [
        Convert.FromHexString("FFFFFFFFFFFF02000000000108004500001400000000400000000A0000010A000002"),
        Convert.FromHexString("02000000000102000000000208060001080006040002"),
    ];

    [WiresharkFact]
    public void Reads_what_the_wireshark_tools_write_in_every_format_and_byte_order()
    {
        using var scratch = new ScratchDirectory();
        string dump = scratch.File("packets.txt");
        File.WriteAllText(dump, HexDump);
        string text2pcap = scratch.File("text2pcap.pcapng");
        WiresharkTools.Run("text2pcap", "-q", "-t", "%Y-%m-%d %H:%M:%S.%f", dump, text2pcap);
        string microseconds = scratch.File("us.pcap");
        string nanoseconds = scratch.File("ns.pcap");
        string fromPcap = scratch.File("tshark.pcapng");
        WiresharkTools.Run("editcap", "-F", "pcap", text2pcap, microseconds);
        WiresharkTools.Run("editcap", "-F", "nsecpcap", text2pcap, nanoseconds);
        WiresharkTools.Run("tshark", "-r", microseconds, "-F", "pcapng", "-w", fromPcap);

        long[] toMicroseconds = [.. HexDumpTimestamps.Select(t => t / 1000 * 1000)];
        AssertPackets(File.ReadAllBytes(text2pcap), CaptureFileFormat.PcapNg, HexDumpTimestamps);
        AssertPackets(File.ReadAllBytes(nanoseconds), CaptureFileFormat.Pcap, HexDumpTimestamps);
        AssertPackets(ToBigEndianPcap(File.ReadAllBytes(nanoseconds)), CaptureFileFormat.Pcap, HexDumpTimestamps);
        AssertPackets(File.ReadAllBytes(microseconds), CaptureFileFormat.Pcap, toMicroseconds);
        AssertPackets(ToBigEndianPcap(File.ReadAllBytes(microseconds)), CaptureFileFormat.Pcap, toMicroseconds);
        // tshark keeps the pcap's microseconds and writes no if_tsresol: the default, 10^-6, applies.
        AssertPackets(File.ReadAllBytes(fromPcap), CaptureFileFormat.PcapNg, toMicroseconds);
    }

    private static readonly byte[] FrameA = PcapNgWriterTests.Frame(60, seed: 1), FrameB = PcapNgWriterTests.Frame(61, seed: 2);

    /// <summary>
    /// What our writer never writes: a big-endian section, then a little-endian one; timestamps in
    /// 2^-10 s, in ms with an if_tsoffset, in the default µs; Simple and obsolete Packet Blocks;
    /// two comments on one packet, one ended by a zero octet; a Name Resolution Block and a
    /// custom block to skip.
    /// </summary>
    private static readonly byte[] MixedFile = BuildMixedFile();

    private static byte[] BuildMixedFile()
    {
        var file = new PcapNgBuilder();
        return file.Section(bigEndian: true)
            .Interface(1, 0, (2, "be0"u8.ToArray()), (9, [0x80 | 10]))
            .Interface(1, 32, (2, "be1"u8.ToArray()), (9, [3]), (14, file.U64(100)))
            .Block(4, new byte[8])
            .EnhancedPacket(0, 3 * 1024 + 512, FrameA, PcapNgBuilder.Comment("first"), PcapNgBuilder.Comment("second"), (2, file.U32(1)))
            .SimplePacket((uint)FrameA.Length, FrameA)
            .Block(0x40000BAD, new byte[13])
            .EnhancedPacket(1, 1_500, FrameB)
            .Section(bigEndian: false)
            .Interface(1, 0, (2, "le0"u8.ToArray()))
            .ObsoletePacket(0, 7_000_001, FrameB, PcapNgBuilder.Comment("old\0 after a zero octet"), (2, file.U32(2)))
            .ToArray();
    }

    [Fact]
    public void Reads_sections_of_both_byte_orders_every_packet_block_and_skips_unknown_blocks()
    {
        using var reader = new CaptureFileReader(new MemoryStream(MixedFile));
        List<CaptureRecord> records = [.. reader.ReadAll()];

        Assert.Equal(["be0", "be1", "le0"], reader.Interfaces.Select(i => i.Name));
        Assert.Equal(
        [
            Expected(0, 3_500_000_000, FrameA, "first\nsecond", PacketDirection.Inbound), // 3584 units of 2^-10 s
            Expected(0, 0, FrameA, null, PacketDirection.Unknown),                        // Simple Packet Block
            Expected(1, 101_500_000_000, FrameB, null, PacketDirection.Unknown),          // 1500 ms + if_tsoffset 100 s
            Expected(2, 7_000_001_000, FrameB, "old", PacketDirection.Outbound),          // obsolete Packet Block, µs
        ],
        records.Select(r => Expected(r.InterfaceIndex, r.Timestamp, r.Data, r.Comment, r.Direction, r.OriginalLength, r.LinkType)));
    }

    [Fact]
    public void Skips_a_section_of_another_major_version_up_to_the_next_section()
    {
        byte[] file = ValidPrefix()
            .EnhancedPacket(0, 1, FrameA)
            .Section(bigEndian: false, majorVersion: 2)
            .Block(0x12345678, new byte[20]) // whatever version 2 may hold
            .EnhancedPacket(7, 2, FrameB)
            .Section(bigEndian: true)
            .Interface(1, 0)
            .EnhancedPacket(0, 3, FrameB)
            .ToArray();

        using var reader = new CaptureFileReader(new MemoryStream(file));

        Assert.Equal([(0, 1L), (1, 3_000L)], reader.ReadAll().Select(r => (r.InterfaceIndex, r.Timestamp)));
    }

    [WiresharkFact]
    public void Tshark_reads_the_hand_built_file_as_we_do()
    {
        using var scratch = new ScratchDirectory();
        string path = scratch.File("mixed.pcapng");
        File.WriteAllBytes(path, MixedFile);

        // "-Y eth": tshark also lists the custom block, as a record that is not a packet. It names
        // interfaces by their id within the section (Wireshark 4.0), so names are not compared.
        (string stdout, string stderr) = WiresharkTools.Run("tshark", "-r", path, "-Y", "eth", "-T", "fields", "-E", "separator=|",
            "-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.len", "-e", WiresharkTools.CommentField);

        Assert.Equal("", stderr);
        List<CaptureRecord> ours = [.. new CaptureFileReader(new MemoryStream(MixedFile)).ReadAll()];
        // A Simple Packet Block has no timestamp: tshark prints none where we give 0.
        Assert.Equal(
            ours.Select(r => $"{(r.Timestamp == 0 ? "" : WiresharkTools.EpochSeconds(r.Timestamp))}|{r.Data.Length}|{r.OriginalLength}|{r.Comment?.Replace('\n', ',')}"),
            stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData(new byte[0], "file header at offset 0: truncated")]
    [InlineData(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, "file header at offset 0: magic 0x04030201 is neither pcap nor pcapng")]
    public void Refuses_what_is_not_a_capture(byte[] file, string message)
    {
        var error = Assert.Throws<CaptureFormatException>(() => new CaptureFileReader(new MemoryStream(file)));
        Assert.StartsWith(message, error.Message);
    }

    /// <summary>Damage done after <see cref="ValidPrefix"/>, whose 68 bytes put the broken block at offset 68.</summary>
    public static TheoryData<string, Func<PcapNgBuilder, byte[]>, string> BrokenBlocks => new()
    {
        {
            "block shorter than its header",
            f => Patch(f.Block(6, []), 72, 7),
            "block at offset 68: total length 7 < 12"
        },
        {
            "total length not a multiple of 4",
            f => Patch(f.Block(6, []), 72, 13),
            "block at offset 68: total length 13 is not a multiple of 4"
        },
        {
            "trailing total length differs",
            f => Patch(f.EnhancedPacket(0, 0, new byte[4]), 68 + 32, 40),
            "block at offset 68: trailing total length 40 != leading 36"
        },
        {
            "packet on an undeclared interface",
            f => f.EnhancedPacket(1, 0, new byte[4]).ToArray(),
            "block at offset 68: packet on interface 1, but the section has declared 1"
        },
        {
            "captured length beyond the block",
            f => Patch(f.EnhancedPacket(0, 0, new byte[4]), 68 + 8 + 12, 200),
            "block at offset 68: captured length 200 exceeds the 4 bytes the block holds"
        },
        {
            "option beyond the block",
            // The comment option at 68 + 8 + 20 + 4 gets code 1, length 9.
            f => Patch(f.EnhancedPacket(0, 0, new byte[4], PcapNgBuilder.Comment("abcd")), 100, 9 << 16 | 1),
            "option at offset 100: option 1 of 9 bytes runs past the end of its block (12 bytes left)"
        },
        {
            "total length beyond what the reader holds",
            f => Patch(f.EnhancedPacket(0, 0, new byte[4]), 72, 0x7FFF_FFFC),
            $"block at offset 68: total length 2147483644 exceeds {CaptureFileReader.MaxBlockLength}"
        },
        {
            "timestamp beyond 64-bit nanoseconds",
            f => f.EnhancedPacket(0, ulong.MaxValue, new byte[4]).ToArray(),
            "block at offset 68: timestamp 18446744073709551615 on interface 0 does not fit in 64-bit nanoseconds"
        },
    };

    [Theory]
    [MemberData(nameof(BrokenBlocks))]
    public void Names_the_offset_and_the_reason_of_a_broken_block(string what, Func<PcapNgBuilder, byte[]> breakIt, string message)
    {
        byte[] file = breakIt(ValidPrefix());

        using var reader = new CaptureFileReader(new MemoryStream(file));
        var error = Assert.Throws<CaptureFormatException>(() => reader.ReadAll().ToList());

        Assert.True(error.Message == message, $"{what}: {error.Message}");
    }

    /// <summary>The built file with the little-endian 32-bit word at <paramref name="offset"/> replaced.</summary>
    private static byte[] Patch(PcapNgBuilder file, int offset, uint value)
    {
        byte[] bytes = file.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(offset), value);
        return bytes;
    }

    [Fact]
    public void Every_truncation_of_a_valid_file_ends_cleanly_or_with_a_format_error()
    {
        foreach (byte[] valid in new[] { ValidPcapNg(), ValidPcap() })
        {
            for (int length = 0; length < valid.Length; length++)
            {
                byte[] truncated = valid[..length];
                Exception? error = Record.Exception(() => ReadEverything(truncated));
                Assert.True(error is null or CaptureFormatException, $"length {length}: {error}");
            }
        }
    }

    [Fact]
    public void A_truncated_packet_says_where_the_file_ends()
    {
        byte[] valid = ValidPcap();
        var error = Assert.Throws<CaptureFormatException>(() => ReadEverything(valid[..^3]));
        Assert.Equal($"record at offset {24 + 16 + 61}: truncated: the file ends at offset {valid.Length - 3}, 3 bytes short", error.Message);
    }

    [Fact]
    public void Random_mutations_of_a_valid_file_raise_nothing_but_format_errors()
    {
        byte[][] valid = [ValidPcapNg(), ValidPcap()];
        Gen<(int Position, byte Value)> mutation = Gen.Choose(0, 1 << 20).Zip(Gen.Choose(0, 255), (p, v) => (p, (byte)v));
        Gen<(int Position, byte Value)[]> mutations = Gen.Choose(1, 8).SelectMany(n => Gen.ArrayOf(mutation, n));
        // A cut below 0 keeps the whole file; others keep that many bytes (modulo its length).
        Arbitrary<(int File, (int Position, byte Value)[] Mutations, int Cut)> cases =
            Gen.Choose(0, valid.Length - 1)
                .Zip(mutations, (file, m) => (file, m))
                .Zip(Gen.Choose(-(1 << 20), 1 << 20), (fm, cut) => (fm.file, fm.m, cut))
                .ToArbitrary();

        Property property = Prop.ForAll(cases, c =>
        {
            byte[] file = (byte[])valid[c.File].Clone();
            foreach ((int position, byte value) in c.Mutations) file[position % file.Length] = value;
            if (c.Cut >= 0) file = file[..(c.Cut % (file.Length + 1))];
            Exception? error = Record.Exception(() => ReadEverything(file));
            return error is null or CaptureFormatException;
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(1000), property);
    }

    private static void AssertPackets(byte[] file, CaptureFileFormat format, long[] timestamps)
    {
        using var reader = new CaptureFileReader(new MemoryStream(file));
        List<CaptureRecord> records = [.. reader.ReadAll()];
        Assert.Equal(format, reader.Format);
        Assert.Equal(timestamps, records.Select(r => r.Timestamp));
        Assert.Equal(HexDumpFrames, records.Select(r => r.Data));
        Assert.Equal(HexDumpFrames.Select(f => (long)f.Length), records.Select(r => r.OriginalLength));
        Assert.All(records, r => Assert.Equal(LinkType.Ethernet, r.LinkType));
    }

    /// <summary>
    /// A classic pcap in the other byte order (pcap section 4: the writer's host order): every
    /// header field swapped, packet data untouched.
    /// </summary>
    private static byte[] ToBigEndianPcap(byte[] littleEndian)
    {
        byte[] file = (byte[])littleEndian.Clone();
        Span<byte> span = file;
        SwapFields(span[..24], 4, 2, 2, 4, 4, 4, 4);
        for (int offset = 24; offset < file.Length;)
        {
            uint captured = BinaryPrimitives.ReadUInt32LittleEndian(span[(offset + 8)..]);
            SwapFields(span.Slice(offset, 16), 4, 4, 4, 4);
            offset += 16 + (int)captured;
        }
        return file;

        static void SwapFields(Span<byte> bytes, params int[] widths)
        {
            foreach (int width in widths)
            {
                bytes[..width].Reverse();
                bytes = bytes[width..];
            }
        }
    }

    /// <summary>SHB (28 bytes) and an Ethernet IDB with if_name and nanosecond if_tsresol (40 bytes).</summary>
    private static PcapNgBuilder ValidPrefix() =>
        new PcapNgBuilder().Section(bigEndian: false).Interface(1, 0, (2, "eth0"u8.ToArray()), (9, [9]));

    private static byte[] ValidPcapNg() =>
        ValidPrefix()
            .EnhancedPacket(0, 1_767_225_601_123_456_789, PcapNgWriterTests.Frame(60, seed: 1), PcapNgBuilder.Comment("hello"))
            .SimplePacket(61, PcapNgWriterTests.Frame(61, seed: 2))
            .ToArray();

    private static byte[] ValidPcap()
    {
        var file = new MemoryStream();
        file.Write(Convert.FromHexString("4D3CB2A1" + "02000400" + "00000000" + "00000000" + "00000400" + "01000000"));
        Span<byte> header = stackalloc byte[16];
        foreach (byte seed in new byte[] { 1, 2 })
        {
            byte[] frame = PcapNgWriterTests.Frame(60 + seed, seed);
            BinaryPrimitives.WriteUInt32LittleEndian(header, 1_767_225_601);
            BinaryPrimitives.WriteUInt32LittleEndian(header[4..], 123_456_789);
            BinaryPrimitives.WriteUInt32LittleEndian(header[8..], (uint)frame.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(header[12..], (uint)frame.Length);
            file.Write(header);
            file.Write(frame);
        }
        return file.ToArray();
    }

    private static (int, LinkType, long, string, long, string?, PacketDirection) Expected(
        int interfaceIndex, long timestamp, byte[] data, string? comment, PacketDirection direction, long? originalLength = null,
        LinkType linkType = LinkType.Ethernet) =>
        (interfaceIndex, linkType, timestamp, Convert.ToHexString(data), originalLength ?? data.Length, comment, direction);

    private static void ReadEverything(byte[] file)
    {
        using var reader = new CaptureFileReader(new MemoryStream(file));
        foreach (CaptureRecord _ in reader.ReadAll()) { }
    }
}
