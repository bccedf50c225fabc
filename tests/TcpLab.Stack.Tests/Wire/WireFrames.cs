using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>
/// What the wire tests share: frame builders (through our writers), FsCheck generators of valid
/// headers, field-by-field projections to compare parsed values without trusting the types'
/// own Equals, an RFC 1071 reference checksum, and the property runner.
/// </summary>
internal static class WireFrames
{
    public const int EthernetIpv4Header = EthernetFrame.HeaderLength + Ipv4Header.Length;

    public static readonly MacAddress ClientMac = MacAddress.Parse("02:00:00:00:fa:01");
    public static readonly MacAddress ServerMac = MacAddress.Parse("02:00:00:00:fa:02");
    public static readonly Ipv4Address ClientIp = Ipv4Address.Parse("10.77.250.1");
    public static readonly Ipv4Address ServerIp = Ipv4Address.Parse("10.77.250.2");

    // ---- Builders: whole frames made with the code under test's writers ----

    /// <summary>Ethernet + IPv4 + TCP header, options and payload, both checksums filled in.</summary>
    public static byte[] TcpFrame(in TcpHeader tcp, ReadOnlySpan<byte> payload) =>
        TcpFrame(tcp, payload, ClientIp, ServerIp);

    public static byte[] TcpFrame(in TcpHeader tcp, ReadOnlySpan<byte> payload, Ipv4Address source, Ipv4Address destination)
    {
        int segmentLength = tcp.Length + payload.Length;
        byte[] frame = Ipv4Frame(new Ipv4Header(source, destination, IpProtocol.Tcp, segmentLength, Identification: 0x4d2));
        Span<byte> segment = frame.AsSpan(EthernetIpv4Header);
        int headerLength = tcp.Write(segment);
        payload.CopyTo(segment[headerLength..]);
        TcpHeader.WriteChecksum(segment, source, destination);
        return frame;
    }

    /// <summary>Ethernet + IPv4 + ICMP message with its checksum.</summary>
    public static byte[] IcmpFrame(IcmpType type, byte code, ushort restHigh, ushort restLow, ReadOnlySpan<byte> data)
    {
        byte[] frame = Ipv4Frame(new Ipv4Header(ClientIp, ServerIp, IpProtocol.Icmp, IcmpMessage.HeaderLength + data.Length));
        Span<byte> message = frame.AsSpan(EthernetIpv4Header);
        data.CopyTo(message[IcmpMessage.HeaderLength..]);
        IcmpMessage.WriteHeader(message, type, code, restHigh, restLow);
        return frame;
    }

    /// <summary>Ethernet broadcast + ARP packet.</summary>
    public static byte[] ArpFrame(in ArpPacket arp)
    {
        var frame = new byte[EthernetFrame.HeaderLength + ArpPacket.Length];
        EthernetFrame.WriteHeader(frame, MacAddress.Broadcast, arp.SenderMac, EtherType.Arp);
        arp.Write(frame.AsSpan(EthernetFrame.HeaderLength));
        return frame;
    }

    /// <summary>An Ethernet frame with the IPv4 header written and a zeroed payload of the header's length.</summary>
    public static byte[] Ipv4Frame(in Ipv4Header ip)
    {
        var frame = new byte[EthernetIpv4Header + ip.PayloadLength];
        EthernetFrame.WriteHeader(frame, ServerMac, ClientMac, EtherType.Ipv4);
        ip.Write(frame.AsSpan(EthernetFrame.HeaderLength));
        return frame;
    }

    /// <summary>A typical established-state segment: ACK with timestamps and some payload.</summary>
    public static TcpHeader DataSegmentHeader(uint seq = 1_000_001, uint ack = 2_000_001)
    {
        var h = new TcpHeader
        {
            SourcePort = 40100, DestinationPort = 5000, SequenceNumber = seq, AcknowledgmentNumber = ack,
            Flags = TcpFlags.Ack | TcpFlags.Psh, Window = 502,
        };
        h.Options.SetTimestamp(3_000_000_000, 123_456);
        return h;
    }

    /// <summary>A SYN laid out as Linux sends it: mss, sackOK, TS, nop, wscale (7, the pre-6.x default shift).</summary>
    public static TcpHeader LinuxSynHeader()
    {
        var h = new TcpHeader { SourcePort = 40100, DestinationPort = 5000, SequenceNumber = 1_000_000, Flags = TcpFlags.Syn, Window = 64240 };
        h.Options.SetMss(1460);
        h.Options.SackPermitted = true;
        h.Options.SetTimestamp(2_473_261_749, 0);
        h.Options.SetWindowScale(7);
        return h;
    }

    /// <summary>Recomputes the IPv4 header checksum after a test edited a field, so the edit is what gets rejected.</summary>
    public static void RefreshIpv4Checksum(Span<byte> ipHeader, int headerLength)
    {
        ipHeader[10] = 0;
        ipHeader[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ipHeader[10..], (ushort)~ReferenceSum(ipHeader[..headerLength]));
    }

    // ---- RFC 1071 reference: 16-bit big-endian words, end-around carry, odd byte padded ----

    /// <summary>The folded ones' complement sum computed the slow, obvious way.</summary>
    public static ushort ReferenceSum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        ulong sum = initial;
        for (int i = 0; i < data.Length; i += 2)
            sum += i + 1 < data.Length ? (uint)(data[i] << 8 | data[i + 1]) : (uint)data[i] << 8;
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The RFC 9293 pseudo-header (source, destination, zero, protocol, TCP length) as 12 bytes, summed by the reference.</summary>
    public static ushort ReferencePseudoHeaderSum(Ipv4Address source, Ipv4Address destination, int length, byte protocol = (byte)IpProtocol.Tcp)
    {
        var pseudo = new byte[12];
        source.Write(pseudo);
        destination.Write(pseudo.AsSpan(4));
        pseudo[9] = protocol;
        BinaryPrimitives.WriteUInt16BigEndian(pseudo.AsSpan(10), (ushort)length);
        return ReferenceSum(pseudo);
    }

    // ---- Field projections: every field, compared with record equality ----

    public sealed record OptionFields(
        ushort? Mss, byte? WindowScale, bool SackPermitted, string? Timestamp, string Sacks,
        FastOpenEncoding FastOpen, string Cookie, bool SawUnknown, bool SawMalformed);

    public static OptionFields Fields(in TcpOptions o) => new(
        o.HasMss ? o.Mss : null,
        o.HasWindowScale ? o.WindowScale : null,
        o.SackPermitted,
        o.HasTimestamp ? $"{o.TsVal}/{o.TsEcr}" : null,
        string.Join(" ", o.Sacks.ToArray().Select(b => $"{b.Left}:{b.Right}")),
        o.FastOpen,
        Convert.ToHexString(o.Cookie),
        o.SawUnknown,
        o.SawMalformed);

    public sealed record HeaderFields(
        ushort SourcePort, ushort DestinationPort, uint SequenceNumber, uint AcknowledgmentNumber,
        TcpFlags Flags, ushort Window, ushort UrgentPointer, OptionFields Options);

    public static HeaderFields Fields(in TcpHeader h) => new(
        h.SourcePort, h.DestinationPort, h.SequenceNumber, h.AcknowledgmentNumber, h.Flags, h.Window, h.UrgentPointer, Fields(h.Options));

    // ---- Generators (valid values only) ----

    public static readonly Gen<bool> AnyBool = Gen.Elements(true, false);
    public static readonly Gen<byte> AnyByte = Gen.Choose(0, 255).Select(x => (byte)x);
    public static readonly Gen<ushort> AnyUInt16 = Gen.OneOf(
        Gen.Elements<ushort>(0, 1, 1460, 0x7FFF, 0x8000, 0xFFFF),
        Gen.Choose(0, 0xFFFF).Select(x => (ushort)x));
    public static readonly Gen<uint> AnyUInt32 = Gen.OneOf(
        Gen.Elements(0u, 1u, 0x7FFF_FFFFu, 0x8000_0000u, 0xFFFF_FFFFu),
        Gen.Choose(0, 0xFFFF).Two().Select(t => (uint)t.Item1 << 16 | (uint)t.Item2));
    public static readonly Gen<MacAddress> AnyMac =
        Gen.Zip(AnyUInt16, AnyUInt32).Select(t => new MacAddress((ulong)t.Item1 << 32 | t.Item2));
    public static readonly Gen<Ipv4Address> AnyIpv4 = AnyUInt32.Select(v => new Ipv4Address(v));

    private static readonly int[] CookieLengths = [0, 4, 6, 8, 10, 12, 14, 16];

    /// <summary>
    /// Any combination of options that fits in 40 bytes: MSS, window scale, SACK-permitted and
    /// timestamps each maybe; a Fast Open cookie (0 = request, or even 4..16) if it still fits;
    /// then as many of 0..4 SACK blocks as the remaining space holds.
    /// </summary>
    public static readonly Gen<TcpOptions> ValidTcpOptions =
        from present in AnyBool.ArrayOf(5)
        from mss in AnyUInt16
        from shift in AnyByte
        from tsVal in AnyUInt32
        from tsEcr in AnyUInt32
        from fastOpen in Gen.Elements(FastOpenEncoding.Rfc7413, FastOpenEncoding.Experimental)
        from cookie in Gen.Elements(CookieLengths).SelectMany(n => AnyByte.ArrayOf(n))
        from wantedSacks in Gen.Choose(0, TcpOptions.MaxSackBlocks)
        from edges in AnyUInt32.ArrayOf(2 * TcpOptions.MaxSackBlocks)
        select BuildOptions(present, mss, shift, tsVal, tsEcr, fastOpen, cookie, wantedSacks, edges);

    private static TcpOptions BuildOptions(bool[] present, ushort mss, byte shift, uint tsVal, uint tsEcr,
        FastOpenEncoding fastOpen, byte[] cookie, int wantedSacks, uint[] edges)
    {
        var o = new TcpOptions();
        if (present[0]) o.SetMss(mss);
        if (present[1]) o.SetWindowScale(shift);
        o.SackPermitted = present[2];
        if (present[3]) o.SetTimestamp(tsVal, tsEcr);
        int cookieSpace = ((fastOpen == FastOpenEncoding.Experimental ? 4 : 2) + cookie.Length + 3) & ~3;
        if (present[4] && o.EncodedLength + cookieSpace <= TcpOptions.MaxLength) o.SetFastOpenCookie(cookie, fastOpen);
        int room = (TcpOptions.MaxLength - o.EncodedLength - 4) / 8; // NOP NOP kind length, then 8 per block
        for (int b = 0; b < Math.Min(wantedSacks, room); b++) o.AddSack(new SackBlock(edges[2 * b], edges[2 * b + 1]));
        return o;
    }

    public static readonly Gen<TcpHeader> ValidTcpHeader =
        from ports in AnyUInt16.Two()
        from seq in AnyUInt32
        from ack in AnyUInt32
        from flags in AnyByte
        from window in AnyUInt16
        from urgent in AnyUInt16
        from options in ValidTcpOptions
        select new TcpHeader
        {
            SourcePort = ports.Item1, DestinationPort = ports.Item2, SequenceNumber = seq, AcknowledgmentNumber = ack,
            Flags = (TcpFlags)flags, Window = window, UrgentPointer = urgent, Options = options,
        };

    /// <summary>Mostly Ethernet-sized payloads, sometimes up to the 65535-byte datagram limit.</summary>
    public static readonly Gen<Ipv4Header> ValidIpv4Header =
        from addresses in AnyIpv4.Two()
        from protocol in AnyByte
        from payloadLength in Gen.Frequency((9, Gen.Choose(0, 1480)), (1, Gen.Choose(0, ushort.MaxValue - Ipv4Header.Length)))
        from ttl in AnyByte
        from id in AnyUInt16
        from fragmentFlags in AnyBool.Two()
        from fragmentUnits in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Elements(1, 0x1FFF)), (2, Gen.Choose(0, 0x1FFF)))
        from tos in AnyByte
        select new Ipv4Header(addresses.Item1, addresses.Item2, (IpProtocol)protocol, payloadLength, ttl, id,
                              fragmentFlags.Item1, fragmentFlags.Item2, fragmentUnits * 8, tos);

    public static readonly Gen<ArpPacket> ValidArp =
        from op in Gen.Elements(ArpOperation.Request, ArpOperation.Reply)
        from macs in AnyMac.Two()
        from ips in AnyIpv4.Two()
        select new ArpPacket(op, macs.Item1, ips.Item1, macs.Item2, ips.Item2);

    /// <summary>Three generators as one generator of triples.</summary>
    public static Gen<(T1, T2, T3)> Together<T1, T2, T3>(Gen<T1> first, Gen<T2> second, Gen<T3> third) =>
        Gen.Zip(first, Gen.Zip(second, third), (a, bc) => (a, bc.Item1, bc.Item2));

    // ---- Property runner ----

    /// <summary>
    /// Checks <paramref name="property"/> (xUnit assertions inside) on <paramref name="tests"/>
    /// generated values; a failure fails the test with FsCheck's report, which holds the
    /// counterexample as <paramref name="show"/> prints it and the assertion's message.
    /// </summary>
    public static void Holds<T>(Gen<T> gen, Action<T> property, Func<T, string> show, int tests = 1_000)
    {
        Arbitrary<Shown<T>> arbitrary = Arb.From(gen.Select(v => new Shown<T>(v, show)));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(tests), Prop.ForAll(arbitrary, s => property(s.Value)));
    }

    private sealed record Shown<T>(T Value, Func<T, string> Show)
    {
        public override string ToString() => Show(Value);
    }

    public static string Show(in TcpOptions o) => Fields(o).ToString();
    public static string Show(in TcpHeader h) => Fields(h).ToString();

    // ---- Random frames for the robustness tests ----

    /// <summary>A valid frame of a random kind (TCP with options and payload, ICMP, ARP), built by our writers.</summary>
    public static byte[] RandomValidFrame(DeterministicRandom rng)
    {
        switch (rng.Next(0, 6))
        {
            case 0:
                return ArpFrame(new ArpPacket(rng.Next(0, 2) == 0 ? ArpOperation.Request : ArpOperation.Reply,
                    ClientMac, ClientIp, MacAddress.Zero, ServerIp));
            case 1:
                byte[] echo = new byte[rng.Next(0, 120)];
                rng.NextBytes(echo);
                return IcmpFrame(IcmpType.EchoRequest, 0, (ushort)rng.Next(0, 65536), (ushort)rng.Next(0, 65536), echo);
            default:
                TcpHeader h = rng.Next(0, 2) == 0 ? LinuxSynHeader() : DataSegmentHeader(rng.NextUInt32(), rng.NextUInt32());
                if (rng.Next(0, 3) == 0)
                {
                    h.Options.SackPermitted = false;
                    for (int b = rng.Next(1, 4); b > 0 && h.Options.EncodedLength + 12 <= TcpOptions.MaxLength; b--)
                        h.Options.AddSack(new SackBlock(rng.NextUInt32(), rng.NextUInt32()));
                }
                if (rng.Next(0, 4) == 0 && h.Options.EncodedLength + 12 <= TcpOptions.MaxLength)
                    h.Options.SetFastOpenCookie([1, 2, 3, 4, 5, 6, 7, 8]);
                byte[] payload = new byte[rng.Next(0, 3) == 0 ? 1448 : rng.Next(0, 64)];
                rng.NextBytes(payload);
                return TcpFrame(h, payload);
        }
    }
}
