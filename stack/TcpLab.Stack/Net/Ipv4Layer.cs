using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Net;

/// <summary>Why <see cref="Ipv4Layer.Send"/> could not send.</summary>
public enum IpSendResult
{
    Sent,
    /// <summary>No interface or gateway reaches the destination (ENETUNREACH).</summary>
    NoRoute,
    /// <summary>Larger than the MTU with DF set (EMSGSIZE).</summary>
    TooBig,
}

/// <summary>
/// IPv4 input and output for a host that does not forward (ip_forward=0): validation in
/// ip_rcv_core's order with its counters, local delivery by protocol, reassembly, routing to
/// an on-link next hop or the default gateway, and fragmentation of datagrams that allow it.
/// </summary>
public sealed class Ipv4Layer
{
    private readonly NetworkStack _stack;
    private readonly IIpProtocolHandler?[] _protocols = new IIpProtocolHandler?[256];
    private readonly FragmentReassembler _reassembler;
    private readonly FragmentReassembler.DatagramHandler _deliver;
    private ushort _nextId;

    internal Ipv4Layer(NetworkStack stack)
    {
        _stack = stack;
        _reassembler = new FragmentReassembler(stack);
        _deliver = Deliver;
        _nextId = (ushort)stack.Random.NextUInt32();
    }

    /// <summary>Bytes held by incomplete reassembly queues.</summary>
    public long ReassemblyMemory => _reassembler.MemoryInUse;

    public void Register(IpProtocol protocol, IIpProtocolHandler handler) => _protocols[(byte)protocol] = handler;

    /// <summary>An IP datagram from <paramref name="networkInterface"/>; the buffer starts at the IP header.</summary>
    internal void Receive(NetworkInterface networkInterface, PacketBuffer packet)
    {
        Counters counters = _stack.Counters;
        counters.Increment(Mib.IpInReceives);
        WireError error = Ipv4Packet.TryParse(packet.Span, out Ipv4Packet ip);
        if (error != WireError.None)
        {
            counters.Reject(WireProtocol.Ipv4, error);
            counters.Increment(error switch
            {
                WireError.Truncated when packet.Length >= Ipv4Packet.MinHeaderLength => Mib.IpExtInTruncatedPkts,
                _ => Mib.IpInHdrErrors,
            });
            if (error == WireError.BadChecksum) counters.Increment(Mib.IpExtInCsumErrors);
            packet.Release();
            return;
        }
        if (!networkInterface.Accepts(ip.Destination))
        {
            // Not ours and we do not forward: ip_route_input fails, InAddrErrors.
            counters.Increment(Mib.IpInAddrErrors);
            counters.Drop(DropReason.IpOtherHost);
        }
        else if (ip.Source.IsBroadcast || ip.Source.IsMulticast || ip.Source == networkInterface.Address.Address)
        {
            counters.Increment(Mib.IpInAddrErrors);
            counters.Drop(DropReason.IpInvalidSource); // martian source (ip_route_input_slow)
        }
        else if (ip.IsFragment)
        {
            _reassembler.Add(networkInterface, ip, _deliver);
        }
        else
        {
            Deliver(networkInterface, ip.Header, ip.Payload, packet.Offload);
        }
        packet.Release();
    }

    /// <summary>ip_local_deliver_finish: hand the datagram to its protocol.</summary>
    private void Deliver(NetworkInterface networkInterface, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload) =>
        Deliver(networkInterface, header, payload, default);

    private void Deliver(NetworkInterface networkInterface, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload, in OffloadInfo offload)
    {
        var datagram = new IpDatagram(networkInterface, header, payload, _stack.Loop.Now, offload);
        IIpProtocolHandler? handler = _protocols[header[9]];
        if (handler is null)
        {
            _stack.Counters.Increment(Mib.IpInUnknownProtos);
            _stack.Counters.Drop(DropReason.IpNoProtocol);
            // No UDP sockets here means every UDP port is closed, as Linux answers for a closed port.
            var code = datagram.Protocol == IpProtocol.Udp ? UnreachableCode.Port : UnreachableCode.Protocol;
            _stack.Icmp.SendErrorFor(datagram, IcmpType.DestinationUnreachable, (byte)code);
            return;
        }
        _stack.Counters.Increment(Mib.IpInDelivers);
        handler.Receive(datagram);
    }

    /// <summary>Finds the interface and next hop for <paramref name="destination"/> (fib_lookup for a host).</summary>
    public bool TryRoute(Ipv4Address destination, out NetworkInterface networkInterface, out Ipv4Address nextHop)
    {
        // Indexed loops: foreach over the IReadOnlyList would allocate an enumerator per segment.
        IReadOnlyList<NetworkInterface> interfaces = _stack.Interfaces;
        for (int i = 0; i < interfaces.Count; i++)
        {
            NetworkInterface candidate = interfaces[i];
            if (candidate.Address.Contains(destination) || destination.IsBroadcast)
            {
                networkInterface = candidate;
                nextHop = destination;
                return true;
            }
        }
        if (_stack.DefaultGateway is { } gateway)
        {
            for (int i = 0; i < interfaces.Count; i++)
            {
                NetworkInterface candidate = interfaces[i];
                if (candidate.Address.Contains(gateway))
                {
                    networkInterface = candidate;
                    nextHop = gateway;
                    return true;
                }
            }
        }
        networkInterface = null!;
        nextHop = default;
        return false;
    }

    /// <summary>
    /// Sends a transport message already in <paramref name="message"/> (which starts at the
    /// transport header): prepends the IP header and routes it. Takes ownership of the buffer.
    /// Datagrams larger than the MTU are fragmented unless <see cref="Ipv4Header.DontFragment"/> is set.
    /// </summary>
    public IpSendResult Send(PacketBuffer message, Ipv4Header header)
    {
        Counters counters = _stack.Counters;
        counters.Increment(Mib.IpOutRequests);
        if (!TryRoute(header.Destination, out NetworkInterface networkInterface, out Ipv4Address nextHop))
        {
            counters.Increment(Mib.IpOutNoRoutes);
            counters.Drop(DropReason.NoRoute);
            message.Release();
            return IpSendResult.NoRoute;
        }
        header.PayloadLength = message.Length;
        if (!header.DontFragment && header.Identification == 0) header.Identification = _nextId++;
        // A TSO superframe (only TCP makes them, within 64 KiB) must fit the MTU once split:
        // what goes on the wire is its headers and gso_size bytes of payload per segment.
        int wireLength = message.Offload.Gso == GsoKind.None ? message.Length : message.Offload.HeaderLength + message.Offload.GsoSize;
        if (Ipv4Header.Length + wireLength > networkInterface.Mtu)
        {
            if (header.DontFragment)
            {
                counters.Increment(Mib.IpFragFails);
                message.Release();
                return IpSendResult.TooBig;
            }
            Fragment(networkInterface, nextHop, header, message);
            return IpSendResult.Sent;
        }
        header.Write(message.Prepend(Ipv4Header.Length));
        if (message.Offload.NeedsChecksum) message.Offload.ChecksumStart += Ipv4Header.Length;
        if (message.Offload.Gso != GsoKind.None) message.Offload.HeaderLength += Ipv4Header.Length;
        networkInterface.TransmitIp(message, nextHop);
        return IpSendResult.Sent;
    }

    /// <summary>ip_do_fragment: payload split on 8-byte boundaries, each fragment a fresh buffer.</summary>
    private void Fragment(NetworkInterface networkInterface, Ipv4Address nextHop, Ipv4Header header, PacketBuffer message)
    {
        ReadOnlySpan<byte> payload = message.Span;
        int perFragment = (networkInterface.Mtu - Ipv4Header.Length) & ~7;
        int count = (payload.Length + perFragment - 1) / perFragment;
        for (int i = 0, offset = 0; offset < payload.Length; i++, offset += perFragment)
        {
            int length = Math.Min(perFragment, payload.Length - offset);
            PacketBuffer fragment = networkInterface.Pool.Rent();
            payload.Slice(offset, length).CopyTo(fragment.Append(length));
            Ipv4Header fragmentHeader = header with
            {
                PayloadLength = length,
                FragmentOffset = offset,
                MoreFragments = offset + length < payload.Length,
            };
            fragmentHeader.Write(fragment.Prepend(Ipv4Header.Length));
            fragment.Cause = message.Cause.IsNone ? new PacketCause(CauseCode.IpFragment, i + 1, count) : message.Cause;
            _stack.Counters.Increment(Mib.IpFragCreates);
            networkInterface.TransmitIp(fragment, nextHop);
        }
        _stack.Counters.Increment(Mib.IpFragOKs);
        message.Release();
    }

    /// <summary>
    /// A datagram we sent could not be delivered because its next hop did not answer ARP.
    /// Linux turns this into an ICMP host unreachable to itself (ipv4_link_failure); the
    /// sending protocol sees it as an error, which is how connect() learns EHOSTUNREACH.
    /// </summary>
    internal void ReportLocalUnreachable(PacketBuffer datagram)
    {
        if (Ipv4Packet.TryParse(datagram.Span, out Ipv4Packet ip, verifyChecksum: false) != WireError.None) return;
        if (_protocols[(byte)ip.Protocol] is not { } handler || ip.Payload.Length < 8) return;
        var error = new IcmpError(IcmpType.DestinationUnreachable, (byte)UnreachableCode.Host, ip.Source,
                                  ip.Header, ip.Payload, nextHopMtu: 0);
        handler.ReceiveError(error);
    }

    internal void DeliverError(in IcmpError error)
    {
        if (_protocols[(byte)error.OriginalProtocol] is { } handler) handler.ReceiveError(error);
    }
}
