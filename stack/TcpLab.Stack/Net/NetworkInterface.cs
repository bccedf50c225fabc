using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Net;

/// <summary>
/// One Ethernet interface of a stack: a link, our MAC and IPv4 address on it, and the ARP
/// neighbour table for its subnet. Input demultiplexes by EtherType; output resolves the next
/// hop and prepends the Ethernet header in the buffer's headroom.
/// </summary>
public sealed class NetworkInterface : IFrameHandler
{
    private readonly NetworkStack _stack;

    /// <summary>What a link must offer for TCP to hand it superframes: segmentation, and partial checksums, which a superframe always has.</summary>
    internal const LinkOffloads SegmentationOffloads = LinkOffloads.TxTcpSegmentation | LinkOffloads.TxChecksum;

    /// <summary>The largest IPv4 datagram, the bound on a TSO superframe.</summary>
    internal const int MaxSuperframeDatagram = 65535;

    /// <summary>Buffers of <see cref="SuperframePool"/>: default headroom, Ethernet header, a 64 KiB datagram.</summary>
    internal const int SuperframeBufferSize = PacketBuffer.DefaultHeadroom + EthernetFrame.HeaderLength + MaxSuperframeDatagram;

    internal NetworkInterface(NetworkStack stack, ILink link, MacAddress mac, Ipv4Cidr address, PacketBufferPool pool,
                              PacketBufferPool? superframePool = null)
    {
        SuperframePool = superframePool;
        if (mac.IsMulticast) throw new ArgumentException($"{mac} is a group address and cannot be an interface's MAC", nameof(mac));
        _stack = stack;
        Link = link;
        Mac = mac;
        Address = address;
        Pool = pool;
        Neighbours = new NeighbourTable(stack, this);
        link.Attach(this);
    }

    public ILink Link { get; }
    public MacAddress Mac { get; }
    public Ipv4Cidr Address { get; }
    public string Name => Link.Info.Name;

    /// <summary>Largest IPv4 datagram in one frame.</summary>
    public int Mtu => Link.Info.Mtu;

    /// <summary>Buffers sized for this interface's frames.</summary>
    public PacketBufferPool Pool { get; }

    /// <summary>
    /// Buffers for TSO superframes, when the link splits them (<see cref="SegmentationOffloads"/>);
    /// null otherwise, and then TCP sends every segment in a frame of its own.
    /// </summary>
    public PacketBufferPool? SuperframePool { get; }

    public NeighbourTable Neighbours { get; }

    /// <summary>True for our address, the limited broadcast and the subnet's directed broadcast.</summary>
    public bool Accepts(Ipv4Address destination) =>
        destination == Address.Address || destination.IsBroadcast
        || (Address.PrefixLength < 31 && destination == Address.DirectedBroadcast);

    public void OnFrame(PacketBuffer frame)
    {
        Counters counters = _stack.Counters;
        if (EthernetFrame.TryParse(frame.Span, out EthernetFrame ethernet) is var error and not WireError.None)
        {
            counters.Reject(WireProtocol.Ethernet, error);
            frame.Release();
            return;
        }
        MacAddress destination = ethernet.Destination;
        if (destination != Mac && !destination.IsBroadcast)
        {
            // Not ours: a TAP in promiscuous mode or a flooding switch shows us other hosts' frames.
            counters.Drop(DropReason.OtherHost);
            frame.Release();
            return;
        }
        EtherType type = ethernet.EtherType;
        frame.TrimFront(EthernetFrame.HeaderLength);
        switch (type)
        {
            case EtherType.Arp:
                Neighbours.ReceiveArp(frame);
                break;
            case EtherType.Ipv4:
                _stack.Ip.Receive(this, frame);
                break;
            default:
                counters.Drop(DropReason.UnhandledEtherType);
                frame.Release();
                break;
        }
    }

    /// <summary>Sends an IPv4 datagram (the buffer starts at its IP header) to an on-link next hop.</summary>
    internal void TransmitIp(PacketBuffer datagram, Ipv4Address nextHop)
    {
        if (nextHop.IsBroadcast || nextHop == Address.DirectedBroadcast)
            TransmitFrame(datagram, MacAddress.Broadcast, EtherType.Ipv4);
        else
            Neighbours.Send(datagram, nextHop);
    }

    /// <summary>Prepends the Ethernet header and hands the frame to the link.</summary>
    internal void TransmitFrame(PacketBuffer payload, MacAddress destination, EtherType type)
    {
        EthernetFrame.WriteHeader(payload.Prepend(EthernetFrame.HeaderLength), destination, Mac, type);
        if (payload.Offload.NeedsChecksum)
            payload.Offload.ChecksumStart += EthernetFrame.HeaderLength; // now relative to the frame start
        if (payload.Offload.Gso != GsoKind.None)
            payload.Offload.HeaderLength += EthernetFrame.HeaderLength;  // hdr_len: every header in front of the payload
        payload.Timestamp = _stack.Loop.Now;
        Link.Transmit(payload);
    }

    public override string ToString() => $"{Name} {Mac} {Address}";
}
