using System.Buffers.Binary;

namespace TcpLab.Stack.Wire;

public enum ArpOperation : ushort
{
    Request = 1,
    Reply = 2,
}

/// <summary>
/// An Ethernet/IPv4 ARP packet (RFC 826), parsed. Other hardware or protocol types are
/// <see cref="WireError.Unsupported"/>: the stack speaks only Ethernet and IPv4.
/// </summary>
public readonly record struct ArpPacket(
    ArpOperation Operation,
    MacAddress SenderMac,
    Ipv4Address SenderIp,
    MacAddress TargetMac,
    Ipv4Address TargetIp)
{
    public const int Length = 28;
    private const ushort HardwareEthernet = 1;

    public static WireError TryParse(ReadOnlySpan<byte> bytes, out ArpPacket packet)
    {
        packet = default;
        if (bytes.Length < Length) return WireError.Truncated;
        if (BinaryPrimitives.ReadUInt16BigEndian(bytes) != HardwareEthernet
            || BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]) != (ushort)EtherType.Ipv4
            || bytes[4] != MacAddress.Length
            || bytes[5] != Ipv4Address.Length)
            return WireError.Unsupported;
        var op = (ArpOperation)BinaryPrimitives.ReadUInt16BigEndian(bytes[6..]);
        if (op is not (ArpOperation.Request or ArpOperation.Reply)) return WireError.BadField;
        packet = new ArpPacket(op, MacAddress.Read(bytes[8..]), Ipv4Address.Read(bytes[14..]),
                               MacAddress.Read(bytes[18..]), Ipv4Address.Read(bytes[24..]));
        return WireError.None;
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, HardwareEthernet);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)EtherType.Ipv4);
        destination[4] = MacAddress.Length;
        destination[5] = Ipv4Address.Length;
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Operation);
        SenderMac.Write(destination[8..]);
        SenderIp.Write(destination[14..]);
        TargetMac.Write(destination[18..]);
        TargetIp.Write(destination[24..]);
    }
}
