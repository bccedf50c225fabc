using System.Buffers.Binary;
using System.Text;
using static TcpLab.Stack.Link.Capture.PcapNgFormat;

namespace TcpLab.Stack.Link.Capture;

/// <summary>
/// Reads the packets of a capture file as tcpdump, dumpcap, Wireshark or <see cref="PcapNgWriter"/>
/// wrote it: classic pcap (microsecond or nanosecond magic, either byte order) or pcapng
/// (draft-ietf-opsawg-pcapng; sections of either byte order, Enhanced, Simple and the obsolete
/// Packet Blocks, if_tsresol in both forms, if_tsoffset, packet comments; other blocks, and
/// sections of a major version other than 1, skipped as section 3.4 asks).
/// <para>
/// The file is streamed block by block, so its size does not matter; only one block is held at a
/// time (at most <see cref="MaxBlockLength"/> bytes; longer blocks of kinds we skip are read past).
/// Anything malformed raises <see cref="CaptureFormatException"/> saying where and why, and each
/// step consumes at least one block header, so no input makes the reader loop. Errors of the
/// stream itself surface as the stream throws them.
/// </para>
/// </summary>
public sealed class CaptureFileReader : IDisposable
{
    /// <summary>Largest block or record this reader holds in memory: 32 MiB, far above any real packet.</summary>
    public const int MaxBlockLength = 32 << 20;

    private const uint PcapMicrosecondMagic = 0xA1B2C3D4;
    private const uint PcapNanosecondMagic = 0xA1B23C4D;
    private const int PcapFileHeaderLength = 24;
    private const int PcapRecordHeaderLength = 16;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly List<CaptureInterface> _interfaces = [];

    /// <summary>pcapng only: interfaces of the current section, by their id within it.</summary>
    private readonly List<CaptureInterface> _sectionInterfaces = [];

    private readonly byte[] _header = new byte[PcapFileHeaderLength];
    private byte[] _body = new byte[4096];

    /// <summary>Bytes consumed from the stream: the file offset of the next read.</summary>
    private long _offset;

    /// <summary>Byte order of the classic pcap file, or of the current pcapng section.</summary>
    private bool _bigEndian;

    /// <summary>Classic pcap only: the timestamp fraction counts 10^-6 or 10^-9 s, as the magic says.</summary>
    private ulong _pcapFractionsPerSecond;

    /// <summary>pcapng only: the current section has a major version we cannot read; skip to the next one.</summary>
    private bool _skippingSection;

    /// <summary>Reads the file header (or first Section Header Block) from <paramref name="stream"/>.</summary>
    /// <exception cref="CaptureFormatException">The stream does not start like a pcap or pcapng file.</exception>
    public CaptureFileReader(Stream stream, bool leaveOpen = false)
    {
        _stream = stream;
        _leaveOpen = leaveOpen;
        try
        {
            Span<byte> magic = _header.AsSpan(0, 4);
            ReadExactly(magic, "file header", 0);
            uint littleEndianMagic = BinaryPrimitives.ReadUInt32LittleEndian(magic);
            if (littleEndianMagic == SectionHeaderBlock)
            {
                Format = CaptureFileFormat.PcapNg;
                ReadSectionHeader(blockOffset: 0);
            }
            else
            {
                Format = CaptureFileFormat.Pcap;
                ReadPcapFileHeader(littleEndianMagic);
            }
        }
        catch
        {
            if (!leaveOpen) stream.Dispose();
            throw;
        }
    }

    /// <summary>Opens the capture file at <paramref name="path"/>.</summary>
    public static CaptureFileReader Open(string path) =>
        new(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 64 * 1024));

    /// <summary>Every packet of the file at <paramref name="path"/>, in file order.</summary>
    public static List<CaptureRecord> ReadFile(string path)
    {
        using CaptureFileReader reader = Open(path);
        return [.. reader.ReadAll()];
    }

    public CaptureFileFormat Format { get; }

    /// <summary>Interfaces seen so far (a pcapng file may declare more further on).</summary>
    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    /// <summary>Reads the next packet; false at the end of the file.</summary>
    /// <exception cref="CaptureFormatException">The file is malformed at this point.</exception>
    public bool TryRead(out CaptureRecord record) =>
        Format == CaptureFileFormat.Pcap ? TryReadPcapRecord(out record) : TryReadPcapNgPacket(out record);

    /// <summary>The remaining packets, read lazily.</summary>
    public IEnumerable<CaptureRecord> ReadAll()
    {
        while (TryRead(out CaptureRecord record)) yield return record;
    }

    public void Dispose()
    {
        if (!_leaveOpen) _stream.Dispose();
    }

    // ---- classic pcap (draft-ietf-opsawg-pcap) ----

    /// <summary>File header (pcap section 4): magic, version, reserved, snap length, link type.</summary>
    private void ReadPcapFileHeader(uint littleEndianMagic)
    {
        uint bigEndianMagic = BinaryPrimitives.ReverseEndianness(littleEndianMagic);
        if (littleEndianMagic is PcapMicrosecondMagic or PcapNanosecondMagic) _bigEndian = false;
        else if (bigEndianMagic is PcapMicrosecondMagic or PcapNanosecondMagic) _bigEndian = true;
        else throw new CaptureFormatException("file header", 0, $"magic 0x{littleEndianMagic:X8} is neither pcap nor pcapng");
        bool nanoseconds = (_bigEndian ? bigEndianMagic : littleEndianMagic) == PcapNanosecondMagic;
        _pcapFractionsPerSecond = nanoseconds ? 1_000_000_000UL : 1_000_000UL;

        Span<byte> header = _header.AsSpan(0, PcapFileHeaderLength);
        ReadExactly(header[4..], "file header", 0);
        ushort major = ReadUInt16(header[4..]);
        ushort minor = ReadUInt16(header[6..]);
        if (major != 2) throw new CaptureFormatException("file header", 0, $"pcap version {major}.{minor} is not 2.x");
        uint snapLength = ReadUInt32(header[16..]);
        // The low 16 bits are the link type; the upper ones may describe an FCS (pcap section 4, LinkType).
        var linkType = (LinkType)(ReadUInt32(header[20..]) & 0xFFFF);
        var scale = CaptureTimestampScale.FromResolution(nanoseconds ? (byte)9 : (byte)6, offsetSeconds: 0);
        _interfaces.Add(new CaptureInterface(0, linkType, snapLength, name: null, scale));
    }

    /// <summary>Packet record (pcap section 5): seconds, fraction, captured length, original length, data.</summary>
    private bool TryReadPcapRecord(out CaptureRecord record)
    {
        record = default;
        long recordOffset = _offset;
        Span<byte> header = _header.AsSpan(0, PcapRecordHeaderLength);
        if (!TryReadStart(header, "record")) return false;

        uint seconds = ReadUInt32(header);
        uint fraction = ReadUInt32(header[4..]);
        uint captured = ReadUInt32(header[8..]);
        uint original = ReadUInt32(header[12..]);
        if (captured > MaxBlockLength)
            throw new CaptureFormatException("record", recordOffset, $"captured length {captured} exceeds {MaxBlockLength}");

        // Into the reused buffer first, so a corrupt length costs a read, not a fresh array.
        Span<byte> data = Body((int)captured);
        ReadExactly(data, "record", recordOffset);
        CaptureInterface iface = _interfaces[0];
        // Seconds and fraction as one count of fractions (below 2^32 * 10^9 < 2^64), converted as pcapng's are.
        long timestamp = Timestamp(iface, seconds * _pcapFractionsPerSecond + fraction, "record", recordOffset);
        record = new CaptureRecord(0, iface.LinkType, timestamp, data.ToArray(), original, Comment: null, PacketDirection.Unknown);
        return true;
    }

    // ---- pcapng (draft-ietf-opsawg-pcapng) ----

    private bool TryReadPcapNgPacket(out CaptureRecord record)
    {
        while (true)
        {
            long blockOffset = _offset;
            Span<byte> typeBytes = _header.AsSpan(0, 4);
            if (!TryReadStart(typeBytes, "block"))
            {
                record = default;
                return false;
            }
            // The SHB type reads the same in both byte orders; it is how a new section announces its own.
            if (BinaryPrimitives.ReadUInt32LittleEndian(typeBytes) == SectionHeaderBlock)
            {
                ReadSectionHeader(blockOffset);
                continue;
            }
            uint type = ReadUInt32(typeBytes);
            Span<byte> lengthBytes = _header.AsSpan(4, 4);
            ReadExactly(lengthBytes, "block", blockOffset);
            uint totalLength = ReadUInt32(lengthBytes);
            CheckBlockLength(blockOffset, totalLength, MinimumBlockLength);
            if (_skippingSection)
            {
                SkipBlockBody(blockOffset, totalLength);
                continue;
            }

            switch (type)
            {
                case InterfaceDescriptionBlock:
                    ReadInterfaceDescription(blockOffset, ReadBlockBody(blockOffset, totalLength, InterfaceFixedLength));
                    break;
                case EnhancedPacketBlock:
                {
                    ReadOnlySpan<byte> body = ReadBlockBody(blockOffset, totalLength, EnhancedPacketFixedLength);
                    record = ReadPacket(blockOffset, body, ReadUInt32(body));
                    return true;
                }
                case ObsoletePacketBlock:
                {
                    // Appendix A: as an EPB, but a 16-bit interface id followed by a 16-bit drop count.
                    ReadOnlySpan<byte> body = ReadBlockBody(blockOffset, totalLength, ObsoletePacketFixedLength);
                    record = ReadPacket(blockOffset, body, ReadUInt16(body));
                    return true;
                }
                case SimplePacketBlock:
                    record = ReadSimplePacket(blockOffset, ReadBlockBody(blockOffset, totalLength, SimplePacketFixedLength));
                    return true;
                default:
                    // Name resolution, statistics, secrets, custom blocks...: not packets (section 3.1 lets readers skip them).
                    SkipBlockBody(blockOffset, totalLength);
                    break;
            }
        }
    }

    /// <summary>
    /// Section Header Block (section 4.1), its type already read: the byte-order magic decides
    /// how the rest of the section reads. Interface ids restart with every section. A section
    /// of another major version cannot be read, so its blocks are skipped (section 3.4); any
    /// minor version reads as 1.0 (1.2 exists in the wild and section 4.1 says to treat it so).
    /// </summary>
    private void ReadSectionHeader(long blockOffset)
    {
        Span<byte> lengthAndMagic = _header.AsSpan(4, 8);
        ReadExactly(lengthAndMagic, "block", blockOffset);
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(lengthAndMagic[4..]);
        if (magic == ByteOrderMagic) _bigEndian = false;
        else if (BinaryPrimitives.ReverseEndianness(magic) == ByteOrderMagic) _bigEndian = true;
        else throw new CaptureFormatException("block", blockOffset, $"section header byte-order magic 0x{magic:X8} is not 0x{ByteOrderMagic:X8}");

        uint totalLength = ReadUInt32(lengthAndMagic);
        CheckBlockLength(blockOffset, totalLength, MinimumBlockLength + SectionHeaderFixedLength);
        // The magic is part of the body and already read; the rest starts with the version.
        ReadOnlySpan<byte> body = ReadBlockBody(blockOffset, totalLength, SectionHeaderFixedLength - 4, alreadyRead: 4);
        _skippingSection = ReadUInt16(body) != 1;
        _sectionInterfaces.Clear();
    }

    /// <summary>Interface Description Block (section 4.2): link type, snap length, if_name, if_tsresol, if_tsoffset.</summary>
    private void ReadInterfaceDescription(long blockOffset, ReadOnlySpan<byte> body)
    {
        var linkType = (LinkType)ReadUInt16(body);
        uint snapLength = ReadUInt32(body[4..]);
        string? name = null;
        byte resolution = 6; // 10^-6 s unless if_tsresol says otherwise
        long offsetSeconds = 0;
        long optionsOffset = blockOffset + BlockHeaderLength + InterfaceFixedLength;
        var options = new PcapNgOptionReader(body[InterfaceFixedLength..], _bigEndian, optionsOffset);
        while (options.MoveNext(out ushort code, out ReadOnlySpan<byte> value))
        {
            switch (code)
            {
                case InterfaceName:
                    name = Text(value);
                    break;
                case InterfaceTimestampResolution when value.Length >= 1:
                    resolution = value[0];
                    break;
                case InterfaceTimestampOffset when value.Length >= 8:
                    offsetSeconds = _bigEndian ? BinaryPrimitives.ReadInt64BigEndian(value) : BinaryPrimitives.ReadInt64LittleEndian(value);
                    break;
            }
        }
        var iface = new CaptureInterface(_interfaces.Count, linkType, snapLength, name,
            CaptureTimestampScale.FromResolution(resolution, offsetSeconds));
        _interfaces.Add(iface);
        _sectionInterfaces.Add(iface);
    }

    /// <summary>
    /// The fields an Enhanced Packet Block (section 4.3) and the obsolete Packet Block share after
    /// the interface id: timestamp, captured and original length, data, then options
    /// (opt_comment, and the direction in epb_flags / pack_flags).
    /// </summary>
    private CaptureRecord ReadPacket(long blockOffset, ReadOnlySpan<byte> body, uint interfaceId)
    {
        CaptureInterface iface = SectionInterface(blockOffset, interfaceId);
        ulong units = ((ulong)ReadUInt32(body[4..]) << 32) | ReadUInt32(body[8..]);
        uint captured = ReadUInt32(body[12..]);
        uint original = ReadUInt32(body[16..]);
        ReadOnlySpan<byte> rest = body[EnhancedPacketFixedLength..];
        if (captured > rest.Length)
            throw new CaptureFormatException("block", blockOffset, $"captured length {captured} exceeds the {rest.Length} bytes the block holds");
        long timestamp = Timestamp(iface, units, "block", blockOffset);

        int optionsStart = Math.Min(Pad4((int)captured), rest.Length);
        long optionsOffset = blockOffset + BlockHeaderLength + EnhancedPacketFixedLength + optionsStart;
        var options = new PcapNgOptionReader(rest[optionsStart..], _bigEndian, optionsOffset);
        string? comment = null;
        var direction = PacketDirection.Unknown;
        while (options.MoveNext(out ushort code, out ReadOnlySpan<byte> value))
        {
            if (code == OptionComment)
            {
                string text = Text(value);
                comment = comment is null ? text : comment + "\n" + text;
            }
            else if (code == PacketFlags && value.Length >= 4)
            {
                direction = (PacketDirection)(ReadUInt32(value) & 3);
            }
        }
        return new CaptureRecord(iface.Index, iface.LinkType, timestamp, rest[..(int)captured].ToArray(), original, comment, direction);
    }

    /// <summary>
    /// Simple Packet Block (section 4.4): the original length and data only, on the section's
    /// first interface, captured up to that interface's snap length; it has no timestamp.
    /// </summary>
    private CaptureRecord ReadSimplePacket(long blockOffset, ReadOnlySpan<byte> body)
    {
        CaptureInterface iface = SectionInterface(blockOffset, 0);
        uint original = ReadUInt32(body);
        uint captured = iface.SnapLength == 0 ? original : Math.Min(original, iface.SnapLength);
        ReadOnlySpan<byte> data = body[SimplePacketFixedLength..];
        if (captured > data.Length)
            throw new CaptureFormatException("block", blockOffset, $"packet of {captured} bytes does not fit the {data.Length} bytes the block holds");
        return new CaptureRecord(iface.Index, iface.LinkType, 0, data[..(int)captured].ToArray(), original, Comment: null, PacketDirection.Unknown);
    }

    private static long Timestamp(CaptureInterface iface, ulong units, string subject, long offset) =>
        iface.Scale.TryToUnixNanoseconds(units, out long nanoseconds)
            ? nanoseconds
            : throw new CaptureFormatException(subject, offset, $"timestamp {units} on interface {iface.Index} does not fit in 64-bit nanoseconds");

    /// <summary>
    /// A string option (section 3.5): UTF-8, not necessarily valid (bad sequences become U+FFFD,
    /// section 3.6.3), and ending at a zero octet if one is present.
    /// </summary>
    private static string Text(ReadOnlySpan<byte> value)
    {
        int end = value.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? value : value[..end]);
    }

    private CaptureInterface SectionInterface(long blockOffset, uint interfaceId) =>
        interfaceId < (uint)_sectionInterfaces.Count
            ? _sectionInterfaces[(int)interfaceId]
            : throw new CaptureFormatException("block", blockOffset,
                $"packet on interface {interfaceId}, but the section has declared {_sectionInterfaces.Count}");

    /// <summary>Section 3.1: a block is at least 12 bytes (more for the SHB's fixed fields) and a multiple of 4.</summary>
    private static void CheckBlockLength(long blockOffset, uint totalLength, int minimum)
    {
        if (totalLength < minimum)
            throw new CaptureFormatException("block", blockOffset, $"total length {totalLength} < {minimum}");
        if (totalLength % 4 != 0)
            throw new CaptureFormatException("block", blockOffset, $"total length {totalLength} is not a multiple of 4");
    }

    /// <summary>
    /// Reads the body of a block whose header (type, length and <paramref name="alreadyRead"/> body
    /// bytes) is consumed, then its trailing length, which must repeat the leading one.
    /// </summary>
    private ReadOnlySpan<byte> ReadBlockBody(long blockOffset, uint totalLength, int fixedLength, int alreadyRead = 0)
    {
        if (totalLength > MaxBlockLength)
            throw new CaptureFormatException("block", blockOffset, $"total length {totalLength} exceeds {MaxBlockLength}");
        int bodyLength = (int)totalLength - MinimumBlockLength - alreadyRead;
        if (bodyLength < fixedLength)
            throw new CaptureFormatException("block", blockOffset, $"total length {totalLength} too short for the block's fixed fields");
        Span<byte> body = Body(bodyLength);
        ReadExactly(body, "block", blockOffset);
        ReadTrailer(blockOffset, totalLength);
        return body;
    }

    /// <summary>Reads past the body of a block we do not interpret, however long, without holding it.</summary>
    private void SkipBlockBody(long blockOffset, uint totalLength)
    {
        long remaining = totalLength - MinimumBlockLength;
        while (remaining > 0)
        {
            Span<byte> chunk = _body.AsSpan(0, (int)Math.Min(remaining, _body.Length));
            ReadExactly(chunk, "block", blockOffset);
            remaining -= chunk.Length;
        }
        ReadTrailer(blockOffset, totalLength);
    }

    private void ReadTrailer(long blockOffset, uint totalLength)
    {
        Span<byte> trailer = _header.AsSpan(0, BlockTrailerLength);
        ReadExactly(trailer, "block", blockOffset);
        uint trailing = ReadUInt32(trailer);
        if (trailing != totalLength)
            throw new CaptureFormatException("block", blockOffset, $"trailing total length {trailing} != leading {totalLength}");
    }

    // ---- stream access ----

    /// <summary>The first <paramref name="length"/> bytes of the reused body buffer, grown if needed.</summary>
    private Span<byte> Body(int length)
    {
        if (_body.Length < length) _body = new byte[Math.Clamp(2 * _body.Length, length, MaxBlockLength)];
        return _body.AsSpan(0, length);
    }

    /// <summary>Fills <paramref name="destination"/> at the start of a block or record; false on a clean end of file.</summary>
    private bool TryReadStart(Span<byte> destination, string subject)
    {
        long start = _offset;
        int read = ReadAtMost(destination);
        if (read == 0) return false;
        if (read < destination.Length)
            throw new CaptureFormatException(subject, start, $"truncated: the file ends {read} bytes into it");
        return true;
    }

    private void ReadExactly(Span<byte> destination, string subject, long subjectOffset)
    {
        int read = ReadAtMost(destination);
        if (read < destination.Length)
            throw new CaptureFormatException(subject, subjectOffset, $"truncated: the file ends at offset {_offset}, {destination.Length - read} bytes short");
    }

    private int ReadAtMost(Span<byte> destination)
    {
        int total = 0;
        while (total < destination.Length)
        {
            int read = _stream.Read(destination[total..]);
            if (read == 0) break;
            total += read;
        }
        _offset += total;
        return total;
    }

    private ushort ReadUInt16(ReadOnlySpan<byte> source) =>
        _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(source) : BinaryPrimitives.ReadUInt16LittleEndian(source);

    private uint ReadUInt32(ReadOnlySpan<byte> source) =>
        _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(source) : BinaryPrimitives.ReadUInt32LittleEndian(source);
}

/// <summary>
/// How an interface counts time: if_tsresol (10^-n or, with the top bit set, 2^-n seconds per
/// unit; section 4.2) and if_tsoffset (seconds to add). Converts with 128-bit arithmetic, so any
/// 64-bit count at any resolution gives the exact (floored) nanosecond or a clear refusal.
/// </summary>
internal readonly struct CaptureTimestampScale
{
    private const long NanosecondsPerSecond = 1_000_000_000;

    private readonly bool _powerOfTwo;
    private readonly int _exponent;
    private readonly Int128 _divisor;
    private readonly long _offsetSeconds;

    private CaptureTimestampScale(bool powerOfTwo, int exponent, Int128 divisor, long offsetSeconds)
    {
        _powerOfTwo = powerOfTwo;
        _exponent = exponent;
        _divisor = divisor;
        _offsetSeconds = offsetSeconds;
    }

    /// <param name="resolution">The if_tsresol byte.</param>
    /// <param name="offsetSeconds">The if_tsoffset value.</param>
    public static CaptureTimestampScale FromResolution(byte resolution, long offsetSeconds)
    {
        bool powerOfTwo = (resolution & 0x80) != 0;
        int exponent = resolution & 0x7F;
        Int128 divisor = 1;
        // A 64-bit count times 10^9 is below 2^94 < 10^29, so finer decimal resolutions all floor to 0
        // and 10^38 (the largest power of ten in an Int128) stands for every one of them.
        if (!powerOfTwo)
            for (int i = 0; i < Math.Min(exponent, 38); i++) divisor *= 10;
        return new CaptureTimestampScale(powerOfTwo, exponent, divisor, offsetSeconds);
    }

    public bool TryToUnixNanoseconds(ulong units, out long nanoseconds)
    {
        Int128 scaled = (Int128)units * NanosecondsPerSecond;
        scaled = _powerOfTwo ? scaled >> Math.Min(_exponent, 127) : scaled / _divisor;
        scaled += (Int128)_offsetSeconds * NanosecondsPerSecond;
        bool fits = scaled >= long.MinValue && scaled <= long.MaxValue;
        nanoseconds = fits ? (long)scaled : 0;
        return fits;
    }
}
