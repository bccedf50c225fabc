using System.Buffers.Binary;

namespace TcpLab.Stack.Wire;

public enum IpProtocol : byte
{
    Icmp = 1,
    Tcp = 6,
    Udp = 17,
}

/// <summary>
/// A zero-copy view of an IPv4 datagram, trimmed to its total length (link padding dropped).
/// Options are skipped, not interpreted: the payload starts at IHL*4.
/// </summary>
public readonly ref struct Ipv4Packet
{
    public const int MinHeaderLength = 20;

    private readonly ReadOnlySpan<byte> _bytes;

    private Ipv4Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public int Version => _bytes[0] >> 4;
    public int HeaderLength => (_bytes[0] & 0x0F) * 4;
    public byte TypeOfService => _bytes[1];
    public int TotalLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
    public ushort Identification => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
    public bool DontFragment => (_bytes[6] & 0x40) != 0;
    public bool MoreFragments => (_bytes[6] & 0x20) != 0;
    /// <summary>Fragment offset in bytes (the field counts 8-byte units).</summary>
    public int FragmentOffset => (BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]) & 0x1FFF) * 8;
    public bool IsFragment => MoreFragments || FragmentOffset != 0;
    public byte Ttl => _bytes[8];
    public IpProtocol Protocol => (IpProtocol)_bytes[9];
    public ushort HeaderChecksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[10..]);
    public Ipv4Address Source => Ipv4Address.Read(_bytes[12..]);
    public Ipv4Address Destination => Ipv4Address.Read(_bytes[16..]);
    public ReadOnlySpan<byte> Options => _bytes[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Header => _bytes[..HeaderLength];
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];
    /// <summary>The whole datagram, header included, exactly <see cref="TotalLength"/> bytes.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>
    /// Validates in the order of Linux's ip_rcv_core(): header present, version 4 and IHL ≥ 5,
    /// header within the bytes, header checksum, then total length against what arrived.
    /// </summary>
    public static WireError TryParse(ReadOnlySpan<byte> bytes, out Ipv4Packet packet, bool verifyChecksum = true)
    {
        packet = default;
        if (bytes.Length < MinHeaderLength) return WireError.Truncated;
        if (bytes[0] >> 4 != 4) return WireError.BadVersion;
        int ihl = (bytes[0] & 0x0F) * 4;
        if (ihl < MinHeaderLength || ihl > bytes.Length) return WireError.BadHeaderLength;
        if (verifyChecksum && !InternetChecksum.IsValid(bytes[..ihl])) return WireError.BadChecksum;
        int total = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
        if (total > bytes.Length) return WireError.Truncated;
        if (total < ihl) return WireError.BadTotalLength;
        packet = new Ipv4Packet(bytes[..total]);
        return WireError.None;
    }
}

/// <summary>The fields of an IPv4 header the stack sets when it sends (no options).</summary>
public record struct Ipv4Header(
    Ipv4Address Source,
    Ipv4Address Destination,
    IpProtocol Protocol,
    int PayloadLength,
    byte Ttl = Ipv4Header.DefaultTtl,
    ushort Identification = 0,
    bool DontFragment = true,
    bool MoreFragments = false,
    int FragmentOffset = 0,
    byte TypeOfService = 0)
{
    /// <summary>net.ipv4.ip_default_ttl.</summary>
    public const byte DefaultTtl = 64;
    public const int Length = Ipv4Packet.MinHeaderLength;

    /// <summary>Reads the sending fields back from a parsed datagram (options are not kept).</summary>
    public static Ipv4Header From(in Ipv4Packet p) =>
        new(p.Source, p.Destination, p.Protocol, p.TotalLength - p.HeaderLength, p.Ttl, p.Identification,
            p.DontFragment, p.MoreFragments, p.FragmentOffset, p.TypeOfService);

    /// <summary>The largest fragment offset the 13-bit field holds, in bytes.</summary>
    public const int MaxFragmentOffset = 0x1FFF * 8;

    /// <summary>Writes the 20-byte header with its checksum.</summary>
    public readonly void Write(Span<byte> destination)
    {
        // Out-of-range values would spill into the neighbouring flag bits or wrap the total length.
        if ((FragmentOffset & 7) != 0 || (uint)FragmentOffset > MaxFragmentOffset)
            throw new ArgumentOutOfRangeException(nameof(FragmentOffset), FragmentOffset, $"fragment offset must be a multiple of 8 in 0..{MaxFragmentOffset}");
        if ((uint)PayloadLength > ushort.MaxValue - Length)
            throw new ArgumentOutOfRangeException(nameof(PayloadLength), PayloadLength, $"payload must be 0..{ushort.MaxValue - Length} bytes");
        destination[0] = 0x45;
        destination[1] = TypeOfService;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)(Length + PayloadLength));
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], Identification);
        int flags = (DontFragment ? 0x4000 : 0) | (MoreFragments ? 0x2000 : 0) | (FragmentOffset / 8);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)flags);
        destination[8] = Ttl;
        destination[9] = (byte)Protocol;
        destination[10] = 0;
        destination[11] = 0;
        Source.Write(destination[12..]);
        Destination.Write(destination[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination[10..], InternetChecksum.Compute(destination[..Length]));
    }
}
