using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using System.Text.Unicode;
using static TcpLab.Stack.Link.Capture.PcapNgFormat;

namespace TcpLab.Stack.Link.Capture;

/// <summary>
/// Writes a pcapng capture (draft-ietf-opsawg-pcapng) that Wireshark, tshark and tcpdump read:
/// one section, one Interface Description Block per <see cref="AddInterface"/>, one Enhanced
/// Packet Block per <see cref="Record"/>, carrying the frame, a nanosecond timestamp, its
/// direction and a comment.
/// <para>
/// The file is always little-endian, whatever the host, so a simulation writes the same bytes
/// everywhere. Each block is assembled in one reused buffer and handed to the stream in a
/// single <see cref="Stream.Write(byte[], int, int)"/>, so recording allocates nothing (a
/// comment is encoded to UTF-8 in place) and the stream only ever holds whole blocks.
/// </para>
/// <para>
/// Buffering is the stream's: <see cref="Flush"/> pushes what it holds to the file, so a reader
/// following the file sees whole blocks up to that point. <see cref="Dispose"/> flushes, then
/// closes the stream unless the writer was created with <c>leaveOpen</c>. Not thread-safe:
/// call it from one event loop.
/// </para>
/// </summary>
public sealed class PcapNgWriter : ICaptureSink, IDisposable
{
    /// <summary>Snap length of an interface unless told otherwise: tcpdump's default, 256 KiB.</summary>
    public const int DefaultSnapLength = 262144;

    /// <summary>The shb_userappl option of every section we write.</summary>
    public const string UserApplication = "TcpLab";

    private const ushort LinkTypeEthernet = (ushort)LinkType.Ethernet;

    /// <summary>if_tsresol 9: timestamps count 10^-9 s (section 4.2, if_tsresol).</summary>
    private const byte NanosecondResolution = 9;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly List<int> _snapLengths = [];
    private byte[] _block = new byte[2048];
    private bool _disposed;

    /// <summary>Starts a capture on <paramref name="stream"/> by writing its Section Header Block.</summary>
    /// <param name="leaveOpen">Keep the stream open when the writer is disposed.</param>
    public PcapNgWriter(Stream stream, bool leaveOpen = false)
    {
        _stream = stream;
        _leaveOpen = leaveOpen;
        WriteSectionHeader();
    }

    /// <summary>Creates (or truncates) the file at <paramref name="path"/> and starts a capture in it.</summary>
    public static PcapNgWriter Create(string path) =>
        new(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 64 * 1024));

    /// <summary>Interfaces declared so far.</summary>
    public int InterfaceCount => _snapLengths.Count;

    /// <summary>Packets recorded so far.</summary>
    public long PacketCount { get; private set; }

    /// <summary>
    /// Writes an Interface Description Block for an Ethernet interface with nanosecond
    /// timestamps and returns its id (0, 1, ... in the order added).
    /// </summary>
    /// <param name="snapLength">Bytes kept of each frame; 0 keeps all of it (section 4.2, SnapLen).</param>
    public int AddInterface(string name, int snapLength = DefaultSnapLength)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(snapLength);
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        if (nameBytes.Length > ushort.MaxValue) throw new ArgumentException("interface name longer than an option can hold", nameof(name));

        Span<byte> body = ReserveBody(InterfaceFixedLength
            + OptionLength(nameBytes.Length) + OptionLength(1) + OptionHeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(body, LinkTypeEthernet);
        BinaryPrimitives.WriteUInt16LittleEndian(body[2..], 0); // reserved
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], (uint)snapLength);
        int length = InterfaceFixedLength;
        length += WriteOption(body[length..], InterfaceName, nameBytes);
        length += WriteOption(body[length..], InterfaceTimestampResolution, [NanosecondResolution]);
        length += WriteEndOfOptions(body[length..]);
        WriteBlock(InterfaceDescriptionBlock, length);

        _snapLengths.Add(snapLength);
        return _snapLengths.Count - 1;
    }

    /// <summary>
    /// Writes an Enhanced Packet Block (section 4.3): the frame cut to the interface's snap
    /// length, its full length, the timestamp in nanoseconds, and as options the direction
    /// (epb_flags) when known and the comment (opt_comment, UTF-8, cut to 65535 bytes) when not empty.
    /// </summary>
    public void Record(int interfaceId, long timestamp, PacketDirection direction, ReadOnlySpan<byte> frame, ReadOnlySpan<char> comment)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)interfaceId >= (uint)_snapLengths.Count) throw new ArgumentOutOfRangeException(nameof(interfaceId));
        ArgumentOutOfRangeException.ThrowIfNegative(timestamp);

        int snapLength = _snapLengths[interfaceId];
        int captured = snapLength == 0 ? frame.Length : Math.Min(frame.Length, snapLength);
        int dataLength = Pad4(captured);
        // UTF-8 takes at most 3 bytes per UTF-16 code unit; an option value at most 65535 bytes.
        int commentRoom = (int)Math.Min(3L * comment.Length, ushort.MaxValue);
        Span<byte> body = ReserveBody(EnhancedPacketFixedLength + dataLength
            + OptionLength(sizeof(uint)) + OptionLength(commentRoom) + OptionHeaderLength);

        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)interfaceId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], (uint)(timestamp >>> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(body[8..], (uint)timestamp);
        BinaryPrimitives.WriteUInt32LittleEndian(body[12..], (uint)captured);
        BinaryPrimitives.WriteUInt32LittleEndian(body[16..], (uint)frame.Length);
        Span<byte> data = body.Slice(EnhancedPacketFixedLength, dataLength);
        frame[..captured].CopyTo(data);
        data[captured..].Clear();

        int length = EnhancedPacketFixedLength + dataLength;
        if (direction != PacketDirection.Unknown)
        {
            Span<byte> flags = stackalloc byte[sizeof(uint)];
            BinaryPrimitives.WriteUInt32LittleEndian(flags, (uint)direction);
            length += WriteOption(body[length..], PacketFlags, flags);
        }
        if (!comment.IsEmpty)
        {
            Span<byte> option = body[length..];
            // Encoding stops at a whole character when the room runs out, so a cut comment stays valid UTF-8.
            Utf8.FromUtf16(comment, option.Slice(OptionHeaderLength, commentRoom), out _, out int written);
            length += FinishOption(option, OptionComment, written);
        }
        if (length > EnhancedPacketFixedLength + dataLength) length += WriteEndOfOptions(body[length..]);
        WriteBlock(EnhancedPacketBlock, length);
        PacketCount++;
    }

    /// <summary>Pushes every block written so far through the stream to the file.</summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _stream.Flush();
    }

    /// <summary>Flushes, then closes the stream unless the writer was created with leaveOpen.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stream.Flush();
        if (!_leaveOpen) _stream.Dispose();
    }

    /// <summary>Section Header Block (section 4.1): byte-order magic, version 1.0, unknown section length.</summary>
    private void WriteSectionHeader()
    {
        byte[] application = Encoding.UTF8.GetBytes(UserApplication);
        Span<byte> body = ReserveBody(SectionHeaderFixedLength + OptionLength(application.Length) + OptionHeaderLength);
        BinaryPrimitives.WriteUInt32LittleEndian(body, ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(body[4..], 1); // major version
        BinaryPrimitives.WriteUInt16LittleEndian(body[6..], 0); // minor version
        BinaryPrimitives.WriteInt64LittleEndian(body[8..], -1); // section length not given: we stream
        int length = SectionHeaderFixedLength;
        length += WriteOption(body[length..], SectionUserApplication, application);
        length += WriteEndOfOptions(body[length..]);
        WriteBlock(SectionHeaderBlock, length);
    }

    /// <summary>Room for a block body of up to <paramref name="maxBodyLength"/> bytes, after the block header.</summary>
    private Span<byte> ReserveBody(int maxBodyLength)
    {
        int needed = MinimumBlockLength + maxBodyLength;
        if (_block.Length < needed) _block = new byte[BitOperations.RoundUpToPowerOf2((uint)needed)];
        return _block.AsSpan(BlockHeaderLength, maxBodyLength);
    }

    /// <summary>Frames the body in <see cref="_block"/> with type and total length (section 3.1) and writes it out.</summary>
    private void WriteBlock(uint blockType, int bodyLength)
    {
        int total = MinimumBlockLength + bodyLength;
        Span<byte> block = _block.AsSpan(0, total);
        BinaryPrimitives.WriteUInt32LittleEndian(block, blockType);
        BinaryPrimitives.WriteUInt32LittleEndian(block[4..], (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(block[^BlockTrailerLength..], (uint)total);
        _stream.Write(_block, 0, total);
    }
}
