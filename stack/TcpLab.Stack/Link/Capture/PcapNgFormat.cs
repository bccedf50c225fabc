using System.Buffers.Binary;

namespace TcpLab.Stack.Link.Capture;

/// <summary>
/// Numbers and option encoding of the pcapng format (draft-ietf-opsawg-pcapng), shared by
/// <see cref="PcapNgWriter"/> and <see cref="CaptureFileReader"/> so both speak exactly the
/// same dialect.
/// </summary>
internal static class PcapNgFormat
{
    // Block types (section 10.1).
    public const uint SectionHeaderBlock = 0x0A0D0D0A;
    public const uint InterfaceDescriptionBlock = 0x00000001;
    public const uint ObsoletePacketBlock = 0x00000002;
    public const uint SimplePacketBlock = 0x00000003;
    public const uint EnhancedPacketBlock = 0x00000006;

    /// <summary>Byte-order magic of the SHB (section 4.1); read swapped it means the other endianness.</summary>
    public const uint ByteOrderMagic = 0x1A2B3C4D;

    /// <summary>Block type and total length in front, total length again at the back (section 3.1).</summary>
    public const int BlockHeaderLength = 8;
    public const int BlockTrailerLength = 4;
    public const int MinimumBlockLength = BlockHeaderLength + BlockTrailerLength;

    /// <summary>Fixed fields of each block body, before its options (sections 4.1 to 4.4, appendix A).</summary>
    public const int SectionHeaderFixedLength = 16;   // magic, major, minor, section length
    public const int InterfaceFixedLength = 8;        // link type, reserved, snap length
    public const int EnhancedPacketFixedLength = 20;  // interface, ts high, ts low, captured, original
    public const int SimplePacketFixedLength = 4;     // original length
    public const int ObsoletePacketFixedLength = 20;  // interface (16 bits), drops (16 bits), ts high, ts low, captured, original

    // Option codes (section 3.5 and the option tables of sections 4.1 to 4.3).
    public const ushort OptionEndOfOptions = 0;
    public const ushort OptionComment = 1;
    public const ushort SectionUserApplication = 4;   // shb_userappl
    public const ushort InterfaceName = 2;            // if_name
    public const ushort InterfaceTimestampResolution = 9; // if_tsresol
    public const ushort InterfaceTimestampOffset = 14;    // if_tsoffset
    public const ushort PacketFlags = 2;              // epb_flags, and pack_flags of the obsolete Packet Block

    public const int OptionHeaderLength = 4;

    /// <summary>Everything in pcapng is padded to 32 bits (section 3.1).</summary>
    public static int Pad4(int length) => (length + 3) & ~3;

    /// <summary>
    /// Writes one option (code, length, value, zero padding) in little-endian order and returns
    /// the bytes used. The caller sizes <paramref name="destination"/> with <see cref="OptionLength"/>.
    /// </summary>
    public static int WriteOption(Span<byte> destination, ushort code, ReadOnlySpan<byte> value)
    {
        value.CopyTo(destination[OptionHeaderLength..]);
        return FinishOption(destination, code, value.Length);
    }

    /// <summary>
    /// Completes an option whose <paramref name="valueLength"/> value bytes the caller already put at
    /// <c>destination[4..]</c> (e.g. text encoded in place): writes the header and the padding,
    /// returns the bytes used.
    /// </summary>
    public static int FinishOption(Span<byte> destination, ushort code, int valueLength)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, code);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], checked((ushort)valueLength));
        int length = OptionLength(valueLength);
        destination[(OptionHeaderLength + valueLength)..length].Clear();
        return length;
    }

    /// <summary>Bytes an option with a value of <paramref name="valueLength"/> bytes takes, padding included.</summary>
    public static int OptionLength(int valueLength) => OptionHeaderLength + Pad4(valueLength);

    /// <summary>The opt_endofopt that closes an option list.</summary>
    public static int WriteEndOfOptions(Span<byte> destination)
    {
        destination[..OptionHeaderLength].Clear();
        return OptionHeaderLength;
    }
}

/// <summary>
/// Walks the options at the end of a pcapng block body (section 3.5): a list of
/// (code, length, value padded to 32 bits) ending at opt_endofopt or at the end of the body.
/// Throws <see cref="CaptureFormatException"/> when an option runs past the body.
/// </summary>
internal ref struct PcapNgOptionReader
{
    private readonly ReadOnlySpan<byte> _options;
    private readonly bool _bigEndian;
    private readonly long _fileOffset;
    private int _position;

    /// <param name="options">The option bytes of one block.</param>
    /// <param name="bigEndian">Byte order of the section the block belongs to.</param>
    /// <param name="fileOffset">Where <paramref name="options"/> starts in the file, for error messages.</param>
    public PcapNgOptionReader(ReadOnlySpan<byte> options, bool bigEndian, long fileOffset)
    {
        _options = options;
        _bigEndian = bigEndian;
        _fileOffset = fileOffset;
    }

    public bool MoveNext(out ushort code, out ReadOnlySpan<byte> value)
    {
        code = 0;
        value = default;
        int remaining = _options.Length - _position;
        // Fewer bytes than an option header is padding some writers leave; the list just ends.
        if (remaining < PcapNgFormat.OptionHeaderLength) return false;

        ReadOnlySpan<byte> header = _options[_position..];
        code = _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(header) : BinaryPrimitives.ReadUInt16LittleEndian(header);
        int length = _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(header[2..]) : BinaryPrimitives.ReadUInt16LittleEndian(header[2..]);
        if (code == PcapNgFormat.OptionEndOfOptions) return false;

        if (PcapNgFormat.OptionHeaderLength + length > remaining)
            throw new CaptureFormatException("option", _fileOffset + _position,
                $"option {code} of {length} bytes runs past the end of its block ({remaining} bytes left)");
        value = _options.Slice(_position + PcapNgFormat.OptionHeaderLength, length);
        // Tolerate a last option whose padding was left out: it still ends the list cleanly.
        _position += Math.Min(PcapNgFormat.OptionLength(length), remaining);
        return true;
    }
}
