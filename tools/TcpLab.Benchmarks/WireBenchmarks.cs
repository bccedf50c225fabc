using BenchmarkDotNet.Attributes;
using TcpLab.Stack.Wire;

namespace TcpLab.Benchmarks;

/// <summary>
/// The receive path's per-frame work on a full-sized data segment, and the SYN writer.
/// Every benchmark must report 0 B allocated: the views are ref structs over the frame.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class WireBenchmarks
{
    private static readonly Ipv4Address Client = Ipv4Address.Parse("10.77.250.1");
    private static readonly Ipv4Address Server = Ipv4Address.Parse("10.77.250.2");

    private byte[] _frame = [];
    private readonly byte[] _synBuffer = new byte[60];
    private TcpHeader _syn;

    [GlobalSetup]
    public void Setup()
    {
        // Ethernet + IPv4 + TCP with timestamps (32-byte header) + 1448 bytes: a 1514-byte frame,
        // what Linux sends at MSS 1460 with timestamps on.
        var data = new TcpHeader
        {
            SourcePort = 40100, DestinationPort = 5000, SequenceNumber = 1_000_001, AcknowledgmentNumber = 2_000_001,
            Flags = TcpFlags.Ack | TcpFlags.Psh, Window = 502,
        };
        data.Options.SetTimestamp(3_000_000_000, 123_456);
        const int payload = 1448;
        int segmentLength = data.Length + payload;
        _frame = new byte[EthernetFrame.HeaderLength + Ipv4Header.Length + segmentLength];
        EthernetFrame.WriteHeader(_frame, MacAddress.Parse("02:00:00:00:fa:02"), MacAddress.Parse("02:00:00:00:fa:01"), EtherType.Ipv4);
        new Ipv4Header(Client, Server, IpProtocol.Tcp, segmentLength, Identification: 1).Write(_frame.AsSpan(EthernetFrame.HeaderLength));
        Span<byte> segment = _frame.AsSpan(EthernetFrame.HeaderLength + Ipv4Header.Length);
        int headerLength = data.Write(segment);
        for (int i = 0; i < payload; i++) segment[headerLength + i] = (byte)(i * 7);
        TcpHeader.WriteChecksum(segment, Client, Server);

        _syn = new TcpHeader { SourcePort = 40100, DestinationPort = 5000, SequenceNumber = 1_000_000, Flags = TcpFlags.Syn, Window = 64240 };
        _syn.Options.SetMss(1460);
        _syn.Options.SackPermitted = true;
        _syn.Options.SetTimestamp(2_473_261_749, 0);
        _syn.Options.SetWindowScale(10);

        if (ParseAndValidateTcpFrame() != 1448 + 502) throw new InvalidOperationException("benchmark frame does not parse");
    }

    /// <summary>Ethernet view, IPv4 with header checksum, TCP with pseudo-header checksum over 1480 bytes, options.</summary>
    [Benchmark]
    public int ParseAndValidateTcpFrame()
    {
        if (EthernetFrame.TryParse(_frame, out EthernetFrame eth) != WireError.None || eth.EtherType != EtherType.Ipv4) return -1;
        if (Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip) != WireError.None || ip.Protocol != IpProtocol.Tcp) return -2;
        if (TcpSegment.TryParse(ip.Payload, out TcpSegment segment) != WireError.None) return -3;
        if (!segment.HasValidChecksum(ip.Source, ip.Destination)) return -4;
        if (TcpHeader.Read(segment, out TcpHeader header) != WireError.None || !header.Options.HasTimestamp) return -5;
        return segment.Payload.Length + header.Window;
    }

    /// <summary>Header and Linux's SYN options (mss, sackOK, TS, nop, wscale) into a buffer; checksum not included.</summary>
    [Benchmark]
    public int WriteSynHeader() => _syn.Write(_synBuffer);
}

/// <summary>The Internet checksum alone: a minimum frame, a 1500-byte MTU packet, a 9000-byte jumbo.</summary>
[MemoryDiagnoser]
[MedianColumn]
public class ChecksumBenchmarks
{
    private byte[] _data = [];

    [Params(64, 1500, 9000)]
    public int Length { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Length];
        new Random(1071).NextBytes(_data);
    }

    [Benchmark]
    public ushort Checksum() => InternetChecksum.Compute(_data);
}
