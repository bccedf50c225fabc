using System.Buffers.Binary;

namespace TcpLab.Stack.Wire;

[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}

/// <summary>A zero-copy view of a TCP segment (header, options and payload).</summary>
public readonly ref struct TcpSegment
{
    public const int MinHeaderLength = 20;

    private readonly ReadOnlySpan<byte> _bytes;

    private TcpSegment(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_bytes);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
    public uint SequenceNumber => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);
    public uint AcknowledgmentNumber => BinaryPrimitives.ReadUInt32BigEndian(_bytes[8..]);
    public int HeaderLength => (_bytes[12] >> 4) * 4;
    public TcpFlags Flags => (TcpFlags)_bytes[13];
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_bytes[14..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[16..]);
    public ushort UrgentPointer => BinaryPrimitives.ReadUInt16BigEndian(_bytes[18..]);
    public ReadOnlySpan<byte> OptionBytes => _bytes[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Checks the fixed header and the data offset (tcp_v4_rcv: doff &lt; 5 or past the segment).</summary>
    public static WireError TryParse(ReadOnlySpan<byte> bytes, out TcpSegment segment)
    {
        segment = default;
        if (bytes.Length < MinHeaderLength) return WireError.Truncated;
        int headerLength = (bytes[12] >> 4) * 4;
        if (headerLength < MinHeaderLength || headerLength > bytes.Length) return WireError.BadDataOffset;
        segment = new TcpSegment(bytes);
        return WireError.None;
    }

    /// <summary>Verifies the checksum over the pseudo-header and the whole segment.</summary>
    public bool HasValidChecksum(Ipv4Address source, Ipv4Address destination) =>
        InternetChecksum.IsValid(_bytes, InternetChecksum.PseudoHeaderSum(source, destination, (byte)IpProtocol.Tcp, _bytes.Length));
}

/// <summary>The header fields of a TCP segment, parsed or to be written.</summary>
public struct TcpHeader
{
    public ushort SourcePort;
    public ushort DestinationPort;
    public uint SequenceNumber;
    public uint AcknowledgmentNumber;
    public TcpFlags Flags;
    public ushort Window;
    public ushort UrgentPointer;
    public TcpOptions Options;

    /// <summary>Header length with options: 20 + options, a multiple of 4, at most 60.</summary>
    public readonly int Length => TcpSegment.MinHeaderLength + Options.EncodedLength;

    /// <summary>
    /// Reads the header and parses its options. A <see cref="WireError.BadOptionLength"/> is
    /// returned with the header and the options before the bad one filled in, as Linux goes on
    /// with what tcp_parse_options() managed to read.
    /// </summary>
    public static WireError Read(in TcpSegment segment, out TcpHeader header)
    {
        header = new TcpHeader
        {
            SourcePort = segment.SourcePort,
            DestinationPort = segment.DestinationPort,
            SequenceNumber = segment.SequenceNumber,
            AcknowledgmentNumber = segment.AcknowledgmentNumber,
            Flags = segment.Flags,
            Window = segment.Window,
            UrgentPointer = segment.UrgentPointer,
        };
        return TcpOptions.Parse(segment.OptionBytes, out header.Options);
    }

    /// <summary>
    /// Writes the header and options with a zero checksum; returns the header length.
    /// Call <see cref="WriteChecksum"/> once the payload follows it.
    /// </summary>
    public readonly int Write(Span<byte> destination)
    {
        int length = Length;
        if (length > 60) throw new InvalidOperationException($"TCP options need {length - 20} bytes, more than 40");
        BinaryPrimitives.WriteUInt16BigEndian(destination, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], DestinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], SequenceNumber);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], AcknowledgmentNumber);
        destination[12] = (byte)((length / 4) << 4);
        destination[13] = (byte)Flags;
        BinaryPrimitives.WriteUInt16BigEndian(destination[14..], Window);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], UrgentPointer); // checksum 0, then urgent pointer
        int written = Options.Write(destination[TcpSegment.MinHeaderLength..]);
        return TcpSegment.MinHeaderLength + written;
    }

    /// <summary>Fills in the checksum of a complete segment (header with zero checksum, then payload).</summary>
    public static void WriteChecksum(Span<byte> segment, Ipv4Address source, Ipv4Address destination)
    {
        uint pseudo = InternetChecksum.PseudoHeaderSum(source, destination, (byte)IpProtocol.Tcp, segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], InternetChecksum.Compute(segment, pseudo));
    }

    /// <summary>
    /// Prepares a segment for checksum offload (CHECKSUM_PARTIAL): the field holds the folded
    /// pseudo-header sum and the device adds the rest, as tcp_v4_send_check() does.
    /// </summary>
    public static void WritePseudoHeaderChecksum(Span<byte> segment, Ipv4Address source, Ipv4Address destination)
    {
        uint pseudo = InternetChecksum.PseudoHeaderSum(source, destination, (byte)IpProtocol.Tcp, segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], (ushort)InternetChecksum.Fold(pseudo));
    }

    /// <summary>
    /// Flags as tcpdump prints them: "S", "S.", "P.", "F.", "R.", "." for a bare ACK, in the order
    /// of its tcp_flag_values table (F S R P . U E W), so an ECN SYN-ACK is "S.E".
    /// </summary>
    public static string FormatFlags(TcpFlags flags)
    {
        Span<char> s = stackalloc char[8];
        int n = 0;
        if ((flags & TcpFlags.Fin) != 0) s[n++] = 'F';
        if ((flags & TcpFlags.Syn) != 0) s[n++] = 'S';
        if ((flags & TcpFlags.Rst) != 0) s[n++] = 'R';
        if ((flags & TcpFlags.Psh) != 0) s[n++] = 'P';
        if ((flags & TcpFlags.Ack) != 0) s[n++] = '.';
        if ((flags & TcpFlags.Urg) != 0) s[n++] = 'U';
        if ((flags & TcpFlags.Ece) != 0) s[n++] = 'E';
        if ((flags & TcpFlags.Cwr) != 0) s[n++] = 'W';
        return n == 0 ? "none" : new string(s[..n]);
    }
}
