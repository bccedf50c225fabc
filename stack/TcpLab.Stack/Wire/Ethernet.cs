using System.Buffers.Binary;

namespace TcpLab.Stack.Wire;

public enum EtherType : ushort
{
    Ipv4 = 0x0800,
    Arp = 0x0806,
    Vlan = 0x8100,
    Ipv6 = 0x86DD,
}

/// <summary>A zero-copy view of an Ethernet II frame (no FCS: TAP and AF_PACKET never show it).</summary>
public readonly ref struct EthernetFrame
{
    public const int HeaderLength = 14;

    private readonly ReadOnlySpan<byte> _bytes;

    private EthernetFrame(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public MacAddress Destination => MacAddress.Read(_bytes);
    public MacAddress Source => MacAddress.Read(_bytes[6..]);
    public EtherType EtherType => (EtherType)BinaryPrimitives.ReadUInt16BigEndian(_bytes[12..]);
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    public static WireError TryParse(ReadOnlySpan<byte> frame, out EthernetFrame view)
    {
        view = default;
        if (frame.Length < HeaderLength) return WireError.Truncated;
        view = new EthernetFrame(frame);
        return WireError.None;
    }

    /// <summary>Writes the 14-byte header at the start of <paramref name="destination"/>.</summary>
    public static void WriteHeader(Span<byte> destination, MacAddress dst, MacAddress src, EtherType type)
    {
        dst.Write(destination);
        src.Write(destination[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination[12..], (ushort)type);
    }
}
