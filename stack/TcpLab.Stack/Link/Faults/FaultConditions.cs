using System.Globalization;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Link.Faults;

/// <summary>Which way a frame crosses a <see cref="FaultStage"/>.</summary>
[Flags]
public enum FaultDirection
{
    /// <summary>Down from the stack to the link (<see cref="ILink.Transmit"/>).</summary>
    Egress = 1,
    /// <summary>Up from the link to the stack (<see cref="IFrameHandler.OnFrame"/>).</summary>
    Ingress = 2,
    Both = Egress | Ingress,
}

/// <summary>What a frame carries, as far as a fault rule tells them apart.</summary>
public enum FaultProtocol
{
    /// <summary>Every frame, IP or not.</summary>
    Any,
    /// <summary>IPv4 with protocol 6, fragments included.</summary>
    Tcp,
    /// <summary>IPv4 with protocol 1.</summary>
    Icmp,
    /// <summary>EtherType 0x0806.</summary>
    Arp,
}

/// <summary>
/// A TCP flag condition written the way tcpdump prints flags (F S R P U E W, '.' for ACK).
/// Exact, as in "S.", the flags must be those and no others, so "." is a bare ACK and not "P."
/// nor "F."; ECN bits count too (an ECN-setup SYN prints "SEW", not "S"). Contains-all, as in
/// "+S", every flag named must be set and the others may be anything.
/// </summary>
/// <param name="Flags">The flags named.</param>
/// <param name="ContainsAll">True for "+..." (these flags among others), false for an exact match.</param>
public readonly record struct TcpFlagMatch(TcpFlags Flags, bool ContainsAll = false)
{
    public bool Matches(TcpFlags flags) => ContainsAll ? (flags & Flags) == Flags : flags == Flags;

    /// <summary>Reads "S", "S.", ".", "P.", "none" (no flag at all), "+S", "+F."...</summary>
    /// <exception cref="FormatException">Not such a flag string; the message says why.</exception>
    public static TcpFlagMatch Parse(string text) =>
        TryParse(text, out TcpFlagMatch match, out string? problem) ? match : throw new FormatException($"'{text}': {problem}");

    public static bool TryParse(string text, out TcpFlagMatch match, out string? problem)
    {
        match = default;
        bool containsAll = text.StartsWith('+');
        string letters = containsAll ? text[1..] : text;
        if (!containsAll && letters == "none")
        {
            problem = null;
            return true;
        }
        if (letters.Length == 0)
        {
            problem = "expected tcpdump flag letters (F S R P U E W, '.' for ACK), such as S, S., ., P. or +S";
            return false;
        }
        TcpFlags flags = TcpFlags.None;
        foreach (char letter in letters)
        {
            TcpFlags flag = LetterFlag(letter);
            if (flag == TcpFlags.None)
            {
                problem = $"'{letter}' is not a tcpdump flag; expected letters of F S R P U E W and '.' for ACK";
                return false;
            }
            if ((flags & flag) != 0)
            {
                problem = $"flag '{letter}' is given twice";
                return false;
            }
            flags |= flag;
        }
        match = new TcpFlagMatch(flags, containsAll);
        problem = null;
        return true;
    }

    /// <summary>tcpdump's spelling: "S.", "+S", "none" for an exact match of no flags.</summary>
    public override string ToString() => (ContainsAll ? "+" : "") + TcpHeader.FormatFlags(Flags);

    private static TcpFlags LetterFlag(char letter) => letter switch
    {
        'F' => TcpFlags.Fin,
        'S' => TcpFlags.Syn,
        'R' => TcpFlags.Rst,
        'P' => TcpFlags.Psh,
        'U' => TcpFlags.Urg,
        'E' => TcpFlags.Ece,
        'W' => TcpFlags.Cwr,
        '.' => TcpFlags.Ack,
        _ => TcpFlags.None,
    };
}

/// <summary>
/// One end of a frame to match: an IPv4 address, a TCP port, or both ("10.0.0.1", "10.0.0.1:80",
/// "*:80"). For ARP, the address is the sender's or target's protocol address, as tcpdump's
/// "src host" matches ARP too; a port only ever matches TCP.
/// </summary>
public readonly record struct FaultEndpoint(Ipv4Address? Address, ushort? Port)
{
    /// <summary>Ports are compared as given: a rule with a port takes only frames with a TCP header, and checks that first.</summary>
    internal bool Matches(bool hasAddress, Ipv4Address address, ushort port) =>
        (Address is not { } wanted || (hasAddress && wanted == address)) && (Port is not { } wantedPort || wantedPort == port);

    internal static bool TryParse(string text, out FaultEndpoint endpoint)
    {
        endpoint = default;
        int colon = text.IndexOf(':');
        string address = colon < 0 ? text : text[..colon];
        ushort? port = null;
        if (colon >= 0)
        {
            if (!ushort.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort p)) return false;
            port = p;
        }
        if (address == "*")
        {
            if (port is null) return false; // "*" alone matches everything: leave the key out instead
            endpoint = new FaultEndpoint(null, port);
            return true;
        }
        if (!Ipv4Address.TryParse(address, out Ipv4Address a)) return false;
        endpoint = new FaultEndpoint(a, port);
        return true;
    }

    public override string ToString() => $"{Address?.ToString() ?? "*"}{(Port is { } p ? $":{p}" : "")}";
}

/// <summary>
/// An inclusive range of 32-bit numbers: a payload length, or TCP sequence numbers. A range whose
/// <see cref="First"/> is above its <see cref="Last"/> wraps around 2^32, as sequence space does.
/// Written "N", "N..M", or "N.." (up to 4294967295).
/// </summary>
public readonly record struct NumberRange(uint First, uint Last)
{
    /// <summary>True when <paramref name="value"/> is in the range, counting modulo 2^32 from <see cref="First"/>.</summary>
    public bool Contains(uint value) => value - First <= Last - First;

    public bool Wraps => First > Last;

    public static bool TryParse(string text, out NumberRange range)
    {
        range = default;
        int dots = text.IndexOf("..", StringComparison.Ordinal);
        if (dots < 0)
        {
            if (!TryParseNumber(text, out uint single)) return false;
            range = new NumberRange(single, single);
            return true;
        }
        string last = text[(dots + 2)..];
        uint end = uint.MaxValue;
        if (!TryParseNumber(text[..dots], out uint start) || (last.Length > 0 && !TryParseNumber(last, out end))) return false;
        range = new NumberRange(start, end);
        return true;
    }

    public override string ToString() =>
        First == Last ? $"{First}" : Last == uint.MaxValue ? $"{First}.." : $"{First}..{Last}";

    private static bool TryParseNumber(string text, out uint value) =>
        uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
}
