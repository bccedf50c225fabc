using System.Buffers.Binary;

namespace TcpLab.Stack.Wire;

public enum IcmpType : byte
{
    EchoReply = 0,
    DestinationUnreachable = 3,
    EchoRequest = 8,
    TimeExceeded = 11,
}

/// <summary>Codes of <see cref="IcmpType.DestinationUnreachable"/> (RFC 792, RFC 1191).</summary>
public enum UnreachableCode : byte
{
    Network = 0,
    Host = 1,
    Protocol = 2,
    Port = 3,
    FragmentationNeeded = 4,
}

/// <summary>
/// A zero-copy view of an ICMPv4 message: type, code, checksum, the 4-byte "rest of header"
/// (identifier and sequence for echo, next-hop MTU for fragmentation needed) and the data.
/// </summary>
public readonly ref struct IcmpMessage
{
    public const int HeaderLength = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    private IcmpMessage(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public IcmpType Type => (IcmpType)_bytes[0];
    public byte Code => _bytes[1];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
    public ushort SequenceNumber => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
    /// <summary>Next-hop MTU of a "fragmentation needed" message (RFC 1191).</summary>
    public ushort NextHopMtu => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
    /// <summary>Echo payload, or the offending datagram's header and first 8 bytes for errors.</summary>
    public ReadOnlySpan<byte> Data => _bytes[HeaderLength..];
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Checks the length and the checksum over the whole message (RFC 792).</summary>
    public static WireError TryParse(ReadOnlySpan<byte> bytes, out IcmpMessage message, bool verifyChecksum = true)
    {
        message = default;
        if (bytes.Length < HeaderLength) return WireError.Truncated;
        if (verifyChecksum && !InternetChecksum.IsValid(bytes)) return WireError.BadChecksum;
        message = new IcmpMessage(bytes);
        return WireError.None;
    }

    /// <summary>
    /// Writes the 8-byte header in front of data already placed after it, and the checksum over
    /// the whole <paramref name="message"/> (header and data).
    /// </summary>
    public static void WriteHeader(Span<byte> message, IcmpType type, byte code, ushort restHigh, ushort restLow)
    {
        message[0] = (byte)type;
        message[1] = code;
        message[2] = 0;
        message[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(message[4..], restHigh);
        BinaryPrimitives.WriteUInt16BigEndian(message[6..], restLow);
        BinaryPrimitives.WriteUInt16BigEndian(message[2..], InternetChecksum.Compute(message));
    }
}
