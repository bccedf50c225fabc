using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>Builds whole Ethernet frames for tests with the stack's own writers.</summary>
public static class Frames
{
    public static byte[] Arp(ArpPacket arp, MacAddress destination)
    {
        var frame = new byte[EthernetFrame.HeaderLength + ArpPacket.Length];
        EthernetFrame.WriteHeader(frame, destination, arp.SenderMac, EtherType.Arp);
        arp.Write(frame.AsSpan(EthernetFrame.HeaderLength));
        return frame;
    }

    public static byte[] Ipv4(MacAddress dstMac, MacAddress srcMac, Ipv4Header header, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[EthernetFrame.HeaderLength + Ipv4Header.Length + payload.Length];
        EthernetFrame.WriteHeader(frame, dstMac, srcMac, EtherType.Ipv4);
        (header with { PayloadLength = payload.Length }).Write(frame.AsSpan(EthernetFrame.HeaderLength));
        payload.CopyTo(frame.AsSpan(EthernetFrame.HeaderLength + Ipv4Header.Length));
        return frame;
    }

    public static byte[] IcmpEcho(IcmpType type, ushort id, ushort seq, ReadOnlySpan<byte> data)
    {
        var message = new byte[IcmpMessage.HeaderLength + data.Length];
        data.CopyTo(message.AsSpan(IcmpMessage.HeaderLength));
        IcmpMessage.WriteHeader(message, type, 0, id, seq);
        return message;
    }
}
