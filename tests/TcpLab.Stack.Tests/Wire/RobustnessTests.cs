using System.Buffers.Binary;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using static TcpLab.Stack.Tests.Wire.WireFrames;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>
/// Hostile bytes: valid frames bit-flipped, cut, with length fields edited, and plain noise,
/// through every parser. Nothing may throw, every accepted view must be self-consistent, and
/// the mutations must reach deep enough to exercise each rejection.
/// </summary>
public class RobustnessTests
{
    private const int FrameCount = 150_000;

    [Fact]
    public void Mutated_and_random_frames_never_make_a_parser_throw()
    {
        var rng = new DeterministicRandom(0x5EED_F00D);
        byte[][] seeds = [.. Enumerable.Range(0, 200).Select(_ => RandomValidFrame(rng)), .. LinuxCaptures.All.Select(f => f.Bytes)];
        var outcomes = new Dictionary<string, int>();
        var buffer = new byte[2048];

        for (int i = 0; i < FrameCount; i++)
        {
            byte[] seed = seeds[rng.Next(0, seeds.Length)];
            int length = Mutate(rng, seed, buffer);
            try
            {
                ParseEverything(buffer.AsSpan(0, length), outcomes, deep: i % 16 == 0);
            }
            catch (Exception e)
            {
                Assert.Fail($"frame {i} threw {e.GetType().Name}: {e.Message}\nframe: {Convert.ToHexStringLower(buffer.AsSpan(0, length))}\n{e.StackTrace}");
            }
        }

        // The fuzzing reached every layer and both sides of each check.
        string[] mustSee =
        [
            "Ethernet.None", "Ethernet.Truncated", "Arp.None", "Arp.Unsupported", "Arp.BadField", "Arp.Truncated",
            "Ipv4.None", "Ipv4.Truncated", "Ipv4.BadVersion", "Ipv4.BadHeaderLength", "Ipv4.BadTotalLength", "Ipv4.BadChecksum",
            "Icmp.None", "Icmp.BadChecksum", "Tcp.None", "Tcp.BadDataOffset", "Tcp.Truncated", "Tcp.ChecksumValid", "Tcp.ChecksumInvalid",
            "TcpOptions.None", "TcpOptions.BadOptionLength", "TcpOptions.SawUnknown", "TcpOptions.SawMalformed", "TcpOptions.Sack", "TcpOptions.FastOpen",
        ];
        Assert.All(mustSee, key => Assert.True(outcomes.GetValueOrDefault(key) > 0, $"fuzzing never produced {key}: {string.Join(", ", outcomes.OrderBy(o => o.Key))}"));
    }

    /// <summary>Copies <paramref name="seed"/> into <paramref name="buffer"/> with 1 to 3 mutations; returns the length.</summary>
    private static int Mutate(DeterministicRandom rng, byte[] seed, byte[] buffer)
    {
        seed.CopyTo(buffer, 0);
        int length = seed.Length;
        for (int m = rng.Next(1, 4); m > 0; m--)
        {
            switch (rng.Next(0, 7))
            {
                case 0: // bit flips
                    for (int f = rng.Next(1, 9); f > 0 && length > 0; f--)
                        buffer[rng.Next(0, length)] ^= (byte)(1 << rng.Next(0, 8));
                    break;
                case 1: // cut anywhere
                    length = rng.Next(0, length + 1);
                    break;
                case 2: // IPv4 header length or total length, checksum fixed up half the time so the edit is what is judged
                    if (length < EthernetIpv4Header) break;
                    if (rng.Next(0, 2) == 0) buffer[14] = (byte)(buffer[14] & 0xF0 | rng.Next(0, 16));
                    else BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(16), (ushort)(rng.Next(0, 2) == 0 ? rng.Next(0, 65536) : length - 14 + rng.Next(-30, 30)));
                    if (rng.Next(0, 2) == 0) RefreshIpv4Checksum(buffer.AsSpan(14, length - 14), Math.Clamp((buffer[14] & 0xF) * 4, 20, length - 14));
                    break;
                case 3: // TCP data offset
                    if (length >= EthernetIpv4Header + 13) buffer[EthernetIpv4Header + 12] = (byte)(rng.Next(0, 16) << 4);
                    break;
                case 4: // an option kind or length byte, from the values that matter
                    if (length > EthernetIpv4Header + 20)
                    {
                        int at = EthernetIpv4Header + 20 + rng.Next(0, Math.Min(40, length - EthernetIpv4Header - 20));
                        ReadOnlySpan<byte> interesting = [0, 1, 2, 3, 4, 5, 8, 34, 254, 10, 18, 40, 41, 255];
                        buffer[at] = rng.Next(0, 2) == 0 ? interesting[rng.Next(0, interesting.Length)] : (byte)rng.Next(0, 256);
                    }
                    break;
                case 5: // link padding or trailing junk
                    int extra = Math.Min(rng.Next(1, 64), buffer.Length - length);
                    rng.NextBytes(buffer.AsSpan(length, extra));
                    length += extra;
                    break;
                default: // noise, keeping an Ethernet/IPv4 start now and then so it gets past the first checks
                    length = rng.Next(0, 1600);
                    rng.NextBytes(buffer.AsSpan(0, length));
                    if (length >= EthernetIpv4Header && rng.Next(0, 2) == 0)
                    {
                        buffer[12] = 0x08;
                        buffer[13] = 0x00;
                        buffer[14] = 0x45;
                        buffer[23] = (byte)(rng.Next(0, 2) == 0 ? IpProtocol.Tcp : IpProtocol.Icmp);
                    }
                    break;
            }
        }
        return length;
    }

    private static void Count(Dictionary<string, int> outcomes, string key) =>
        outcomes[key] = outcomes.GetValueOrDefault(key) + 1;

    /// <summary>Every parser on every slice it could be handed, reading every property of what it accepts.</summary>
    private static void ParseEverything(ReadOnlySpan<byte> frame, Dictionary<string, int> outcomes, bool deep)
    {
        WireError e = EthernetFrame.TryParse(frame, out EthernetFrame eth);
        Count(outcomes, $"Ethernet.{e}");
        if (e != WireError.None) return;
        _ = (eth.Destination.IsMulticast, eth.Source.IsBroadcast, eth.EtherType);
        ReadOnlySpan<byte> l3 = eth.Payload;

        e = ArpPacket.TryParse(l3, out ArpPacket arp);
        Count(outcomes, $"Arp.{e}");
        if (e == WireError.None) Assert.True(arp.Operation is ArpOperation.Request or ArpOperation.Reply);

        WireError checkedError = Ipv4Packet.TryParse(l3, out _, verifyChecksum: true);
        Count(outcomes, $"Ipv4.{checkedError}");
        if (Ipv4Packet.TryParse(l3, out Ipv4Packet ip, verifyChecksum: false) == WireError.None)
        {
            Assert.Equal(ip.TotalLength, ip.Bytes.Length);
            Assert.InRange(ip.HeaderLength, Ipv4Packet.MinHeaderLength, ip.TotalLength);
            Assert.Equal(ip.HeaderLength - Ipv4Packet.MinHeaderLength, ip.Options.Length);
            Assert.Equal(ip.TotalLength - ip.HeaderLength, ip.Payload.Length);
            _ = (ip.Version, ip.TypeOfService, ip.Identification, ip.IsFragment, ip.Ttl, ip.Protocol, ip.HeaderChecksum, ip.Source, ip.Destination, ip.Header.Length);
            _ = Ipv4Header.From(ip);
            ParseTransport(ip.Payload, ip.Source, ip.Destination, outcomes, deep);
        }
        // Transport parsers also get bytes no IPv4 header vouched for.
        if (l3.Length > Ipv4Packet.MinHeaderLength) ParseTransport(l3[Ipv4Packet.MinHeaderLength..], WireFrames.ClientIp, WireFrames.ServerIp, outcomes, deep);
    }

    private static void ParseTransport(ReadOnlySpan<byte> l4, Ipv4Address source, Ipv4Address destination, Dictionary<string, int> outcomes, bool deep)
    {
        WireError e = IcmpMessage.TryParse(l4, out _, verifyChecksum: true);
        Count(outcomes, $"Icmp.{e}");
        if (IcmpMessage.TryParse(l4, out IcmpMessage icmp, verifyChecksum: false) == WireError.None)
        {
            _ = (icmp.Type, icmp.Code, icmp.Checksum, icmp.Identifier, icmp.SequenceNumber, icmp.NextHopMtu);
            Assert.Equal(icmp.Bytes.Length - IcmpMessage.HeaderLength, icmp.Data.Length);
        }

        e = TcpSegment.TryParse(l4, out TcpSegment segment);
        Count(outcomes, $"Tcp.{e}");
        if (e != WireError.None) return;
        Assert.InRange(segment.HeaderLength, TcpSegment.MinHeaderLength, Math.Min(60, segment.Bytes.Length));
        Assert.Equal(segment.HeaderLength - TcpSegment.MinHeaderLength, segment.OptionBytes.Length);
        Assert.Equal(segment.Bytes.Length - segment.HeaderLength, segment.Payload.Length);
        _ = (segment.SourcePort, segment.DestinationPort, segment.SequenceNumber, segment.AcknowledgmentNumber, segment.Flags, segment.Window, segment.Checksum, segment.UrgentPointer);
        Count(outcomes, segment.HasValidChecksum(source, destination) ? "Tcp.ChecksumValid" : "Tcp.ChecksumInvalid");

        e = TcpHeader.Read(segment, out TcpHeader header);
        Count(outcomes, $"TcpOptions.{e}");
        TcpOptions options = header.Options;
        if (options.SawUnknown) Count(outcomes, "TcpOptions.SawUnknown");
        if (options.SawMalformed) Count(outcomes, "TcpOptions.SawMalformed");
        if (options.SackBlockCount > 0) Count(outcomes, "TcpOptions.Sack");
        if (options.FastOpen != FastOpenEncoding.None) Count(outcomes, "TcpOptions.FastOpen");
        Assert.InRange(options.SackBlockCount, 0, TcpOptions.MaxSackBlocks);
        Assert.True(options.FastOpenCookieLength is 0 or (>= 4 and <= 16) && options.FastOpenCookieLength % 2 == 0);

        // Whatever was read can be written back, when it fits, and reads back the same.
        if (options.EncodedLength <= TcpOptions.MaxLength)
        {
            Span<byte> rewritten = stackalloc byte[TcpOptions.MaxLength];
            int n = options.Write(rewritten);
            Assert.Equal(WireError.None, TcpOptions.Parse(rewritten[..n], out TcpOptions again));
            Assert.Equal(Fields(options) with { SawUnknown = false, SawMalformed = false }, Fields(again));
        }
        if (deep) _ = (options.ToString(), TcpHeader.FormatFlags(header.Flags));
    }
}
