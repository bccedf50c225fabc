using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>
/// One frame the Linux kernel put on a veth, as tools/kat/capture-linux-frames.sh stored it:
/// its bytes and the text `tcpdump -nn -vv -e -t -S` printed for it.
/// </summary>
internal sealed record CapturedFrame(string Capture, int Number, string What, string Tcpdump, byte[] Bytes)
{
    public override string ToString() => $"{Capture} frame {Number} ({What})";
}

/// <summary>The known-answer captures in Wire/Data (embedded resources), and tcpdump's text taken apart.</summary>
internal static partial class LinuxCaptures
{
    public const string KernelPrefix = "linux-6.18-";

    public static readonly string[] Names = ["arp-icmp", "tcp-hello", "tcp-rst", "tcp-fastopen", "tcp-ecn", "tcp-sack", "tcp-sack-nots"];

    private static readonly Dictionary<string, IReadOnlyList<CapturedFrame>> Cache = [];

    public static IReadOnlyList<CapturedFrame> Load(string name)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(name, out IReadOnlyList<CapturedFrame>? frames))
                Cache[name] = frames = Parse(name, ReadResource(name));
            return frames;
        }
    }

    public static CapturedFrame Frame(string name, int number) => Load(name).Single(f => f.Number == number);

    /// <summary>The first frame the capture script described as <paramref name="what"/> (e.g. "server SYN-ACK").</summary>
    public static CapturedFrame Frame(string name, string what) =>
        Load(name).FirstOrDefault(f => f.What == what)
        ?? throw new InvalidOperationException($"{KernelPrefix}{name}.txt has no frame described as '{what}'");

    public static IEnumerable<CapturedFrame> All => Names.SelectMany(Load);

    /// <summary>(capture, frame number) of every frame whose tcpdump text matches, for [MemberData].</summary>
    public static TheoryData<string, int> Where(Func<CapturedFrame, bool> predicate)
    {
        var data = new TheoryData<string, int>();
        foreach (CapturedFrame f in All.Where(predicate)) data.Add(f.Capture, f.Number);
        return data;
    }

    public static bool IsTcp(CapturedFrame f) => f.Tcpdump.Contains("proto TCP (6)", StringComparison.Ordinal);
    public static bool IsIcmp(CapturedFrame f) => f.Tcpdump.Contains("proto ICMP (1)", StringComparison.Ordinal);
    public static bool IsIpv4(CapturedFrame f) => f.Tcpdump.Contains("ethertype IPv4 (0x0800)", StringComparison.Ordinal);
    public static bool IsArp(CapturedFrame f) => f.Tcpdump.Contains("ethertype ARP (0x0806)", StringComparison.Ordinal);

    private static string ReadResource(string name)
    {
        string resource = $"Wire.Data.{KernelPrefix}{name}.txt";
        using Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"embedded resource {resource} is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>"# frame N: what", "# tcpdump: ..." lines, then the frame as one hex line.</summary>
    private static List<CapturedFrame> Parse(string name, string text)
    {
        var frames = new List<CapturedFrame>();
        int number = 0;
        string what = "";
        var tcpdump = new List<string>();
        foreach (string line in text.Split('\n'))
        {
            Match header = FrameHeader().Match(line);
            if (header.Success)
            {
                number = int.Parse(header.Groups[1].Value, CultureInfo.InvariantCulture);
                what = header.Groups[2].Value;
                tcpdump.Clear();
            }
            else if (line.StartsWith("# tcpdump: ", StringComparison.Ordinal))
            {
                tcpdump.Add(line["# tcpdump: ".Length..]);
            }
            else if (line.Length > 0 && line[0] != '#')
            {
                frames.Add(new CapturedFrame(name, number, what, string.Join("\n", tcpdump), Convert.FromHexString(line.Trim())));
            }
        }
        return frames;
    }

    [GeneratedRegex(@"^# frame (\d+): (.*)$")]
    private static partial Regex FrameHeader();

    // ---- tcpdump -nn -vv -e -t -S text, taken apart ----

    public sealed record EthernetText(string Source, string Destination, ushort EtherType, int Length);

    public static EthernetText Ethernet(CapturedFrame f)
    {
        Match m = Required(EthernetLine(), f);
        return new(m.Groups["src"].Value, m.Groups["dst"].Value, Hex16(m.Groups["type"].Value), Int(m.Groups["length"].Value));
    }

    [GeneratedRegex(@"^(?<src>[0-9a-f:]{17}) > (?<dst>[0-9a-f:]{17}), ethertype \S+ \(0x(?<type>[0-9a-f]{4})\), length (?<length>\d+):")]
    private static partial Regex EthernetLine();

    public sealed record Ipv4Text(
        byte Tos, byte Ttl, ushort Id, int FragmentOffset, string Flags, byte Protocol, int Length, string Source, string Destination);

    /// <summary>The outer IPv4 header (the first one printed; ICMP errors print the quoted one after it).</summary>
    public static Ipv4Text Ipv4(CapturedFrame f)
    {
        Match m = Required(Ipv4Line(), f);
        Match a = Required(Ipv4Addresses(), f);
        return new((byte)Hex16(m.Groups["tos"].Value), (byte)Int(m.Groups["ttl"].Value), (ushort)Int(m.Groups["id"].Value),
                   Int(m.Groups["offset"].Value), m.Groups["flags"].Value, (byte)Int(m.Groups["proto"].Value), Int(m.Groups["length"].Value),
                   a.Groups["src"].Value, a.Groups["dst"].Value);
    }

    // The second line: "    10.77.250.1.40100 > 10.77.250.2.5000: ..." or "    10.77.250.1 > 10.77.250.2: ICMP ..."
    [GeneratedRegex(@"^ {4}(?<src>\d+\.\d+\.\d+\.\d+)(?:\.\d+)? > (?<dst>\d+\.\d+\.\d+\.\d+)(?:\.\d+)?:", RegexOptions.Multiline)]
    private static partial Regex Ipv4Addresses();

    // "(tos 0x2,ECT(0), ttl 64, id 40616, offset 0, flags [DF], proto TCP (6), length 62)"
    [GeneratedRegex(@"\(tos 0x(?<tos>[0-9a-f]+)(?:,[^,]+)?, ttl (?<ttl>\d+), id (?<id>\d+), offset (?<offset>\d+), flags \[(?<flags>[^\]]*)\], proto \S+ \((?<proto>\d+)\), length (?<length>\d+)")]
    private static partial Regex Ipv4Line();

    public sealed record TcpText(
        string Source, ushort SourcePort, string Destination, ushort DestinationPort, string Flags,
        ushort Checksum, bool ChecksumCorrect, uint Seq, uint? Ack, ushort Window, string? Options, int PayloadLength);

    public static TcpText Tcp(CapturedFrame f)
    {
        Match m = Required(TcpLine(), f);
        return new(
            m.Groups["src"].Value, (ushort)Int(m.Groups["sport"].Value), m.Groups["dst"].Value, (ushort)Int(m.Groups["dport"].Value),
            m.Groups["flags"].Value, Hex16(m.Groups["cksum"].Value), m.Groups["verdict"].Value == "correct",
            UInt(m.Groups["seq"].Value), m.Groups["ack"].Success ? UInt(m.Groups["ack"].Value) : null,
            (ushort)Int(m.Groups["win"].Value), m.Groups["options"].Success ? m.Groups["options"].Value : null, Int(m.Groups["length"].Value));
    }

    // "10.77.250.1.40100 > 10.77.250.2.5000: Flags [S], cksum 0x33d7 (correct), seq 1287016898, win 64240, options [...], length 0"
    [GeneratedRegex(@"(?<src>[\d.]+)\.(?<sport>\d+) > (?<dst>[\d.]+)\.(?<dport>\d+): Flags \[(?<flags>[^\]]*)\], cksum 0x(?<cksum>[0-9a-f]{4}) \((?<verdict>[^)]*)\), seq (?<seq>\d+)(?::\d+)?(?:, ack (?<ack>\d+))?, win (?<win>\d+)(?:, options \[(?<options>[^\]]*)\])?, length (?<length>\d+)")]
    private static partial Regex TcpLine();

    /// <summary>tcpdump's option list without its "nop" entries, which is what TcpOptions.ToString() promises.</summary>
    public static string OptionsWithoutNops(string tcpdumpOptions) =>
        string.Join(",", tcpdumpOptions.Split(',').Where(o => o != "nop"));

    /// <summary>The SACK blocks of tcpdump's "sack 2 {l:r}{l:r}" (absolute numbers, as -S prints them).</summary>
    public static (uint Left, uint Right)[] SackBlocks(TcpText tcp) =>
        tcp.Options is null ? [] : SackBlock().Matches(tcp.Options).Select(m => (UInt(m.Groups[1].Value), UInt(m.Groups[2].Value))).ToArray();

    [GeneratedRegex(@"\{(\d+):(\d+)\}")]
    private static partial Regex SackBlock();

    /// <summary>The cookie of "tfo  cookie d7527c902de3c1df", or "" for "tfo  cookiereq", or null.</summary>
    public static string? FastOpenCookie(TcpText tcp)
    {
        if (tcp.Options is null) return null;
        Match m = FastOpenOption().Match(tcp.Options);
        return m.Success ? m.Groups[1].Value : null;
    }

    [GeneratedRegex(@"tfo +cookie(?:req| ([0-9a-f]+))")]
    private static partial Regex FastOpenOption();

    /// <summary>"TS val 2473261749 ecr 0".</summary>
    public static (uint Val, uint Ecr)? Timestamp(TcpText tcp)
    {
        Match m = tcp.Options is null ? Match.Empty : TimestampOption().Match(tcp.Options);
        return m.Success ? (UInt(m.Groups[1].Value), UInt(m.Groups[2].Value)) : null;
    }

    [GeneratedRegex(@"TS val (\d+) ecr (\d+)")]
    private static partial Regex TimestampOption();

    public sealed record IcmpEchoText(string Kind, ushort Id, ushort Seq, int Length);

    public static IcmpEchoText IcmpEcho(CapturedFrame f)
    {
        Match m = Required(IcmpEchoLine(), f);
        return new(m.Groups[1].Value, (ushort)Int(m.Groups[2].Value), (ushort)Int(m.Groups[3].Value), Int(m.Groups[4].Value));
    }

    [GeneratedRegex(@"ICMP echo (request|reply), id (\d+), seq (\d+), length (\d+)")]
    private static partial Regex IcmpEchoLine();

    public static Match Required(Regex regex, CapturedFrame f)
    {
        Match m = regex.Match(f.Tcpdump);
        if (!m.Success) throw new InvalidOperationException($"{f}: tcpdump text does not match {regex}:\n{f.Tcpdump}");
        return m;
    }

    private static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);
    private static uint UInt(string s) => uint.Parse(s, CultureInfo.InvariantCulture);
    private static ushort Hex16(string s) => ushort.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
