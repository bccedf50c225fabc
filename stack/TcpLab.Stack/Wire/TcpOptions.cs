using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace TcpLab.Stack.Wire;

/// <summary>TCP option kinds (IANA "TCP Option Kind Numbers").</summary>
public enum TcpOptionKind : byte
{
    EndOfList = 0,
    NoOperation = 1,
    MaximumSegmentSize = 2,
    WindowScale = 3,
    SackPermitted = 4,
    Sack = 5,
    Timestamp = 8,
    FastOpen = 34,
    Experimental = 254,
}

/// <summary>How a Fast Open cookie option was (or is to be) encoded.</summary>
public enum FastOpenEncoding : byte
{
    None,
    /// <summary>Kind 34, RFC 7413.</summary>
    Rfc7413,
    /// <summary>Kind 254 with magic 0xF989, the pre-RFC experimental encoding Linux still accepts and can send.</summary>
    Experimental,
}

/// <summary>One SACK block: the bytes [Left, Right) were received (RFC 2018).</summary>
public readonly record struct SackBlock(uint Left, uint Right);

[InlineArray(TcpOptions.MaxSackBlocks)]
public struct SackBlockArray
{
    private SackBlock _element;
}

[InlineArray(TcpOptions.MaxFastOpenCookie)]
public struct FastOpenCookieBytes
{
    private byte _element;
}

/// <summary>
/// The options of one TCP header, parsed or to be written. Fixed-size, allocation-free: SACK
/// blocks and the Fast Open cookie live inline.
/// <para>
/// Parsing is syntactic and follows Linux's tcp_parse_options(): NOP and EOL, a known kind
/// with the wrong length is ignored, unknown kinds are skipped (and noted), and an option with
/// length 0/1 or running past the header stops parsing with <see cref="WireError.BadOptionLength"/>,
/// keeping what was parsed before it. Whether an option counts (MSS only on SYN, SACK blocks
/// only after SACK was negotiated, ...) is for the TCP layer to decide.
/// </para>
/// </summary>
public struct TcpOptions : IEquatable<TcpOptions>
{
    public const int MaxSackBlocks = 4;
    public const int MaxFastOpenCookie = 16;
    public const int MinFastOpenCookie = 4;
    public const ushort FastOpenMagic = 0xF989;
    /// <summary>The most option space a header has: 60 - 20.</summary>
    public const int MaxLength = 40;

    public bool HasMss;
    public ushort Mss;

    public bool HasWindowScale;
    /// <summary>Shift count as received (Linux clamps values above 14 when it uses them, RFC 7323 2.3).</summary>
    public byte WindowScale;

    public bool SackPermitted;

    public bool HasTimestamp;
    public uint TsVal;
    public uint TsEcr;

    public int SackBlockCount;
    public SackBlockArray SackBlocks;

    public FastOpenEncoding FastOpen;
    /// <summary>0 with <see cref="FastOpen"/> set is a cookie request.</summary>
    public int FastOpenCookieLength;
    public FastOpenCookieBytes FastOpenCookie;

    /// <summary>An option of unknown kind was skipped (Linux: saw_unknown).</summary>
    public bool SawUnknown;

    /// <summary>A known option with a length it cannot have was skipped.</summary>
    public bool SawMalformed;

    [UnscopedRef] public readonly ReadOnlySpan<SackBlock> Sacks => ((ReadOnlySpan<SackBlock>)SackBlocks)[..SackBlockCount];
    [UnscopedRef] public readonly ReadOnlySpan<byte> Cookie => ((ReadOnlySpan<byte>)FastOpenCookie)[..FastOpenCookieLength];

    public void SetMss(ushort mss) { HasMss = true; Mss = mss; }
    public void SetWindowScale(byte shift) { HasWindowScale = true; WindowScale = shift; }
    public void SetTimestamp(uint tsVal, uint tsEcr) { HasTimestamp = true; TsVal = tsVal; TsEcr = tsEcr; }

    public void AddSack(SackBlock block)
    {
        if (SackBlockCount == MaxSackBlocks) throw new InvalidOperationException("at most 4 SACK blocks");
        SackBlocks[SackBlockCount++] = block;
    }

    /// <summary>Sets a cookie (even length 4..16) or, with an empty one, a cookie request (RFC 7413 4.1.1).</summary>
    public void SetFastOpenCookie(ReadOnlySpan<byte> cookie, FastOpenEncoding encoding = FastOpenEncoding.Rfc7413)
    {
        // Write pads with two NOPs to a word boundary, which only an even length reaches.
        if (!IsValidCookieLength(cookie.Length))
            throw new ArgumentException($"a Fast Open cookie is empty or 4..16 bytes of even length, not {cookie.Length}", nameof(cookie));
        FastOpen = encoding;
        FastOpenCookieLength = cookie.Length;
        cookie.CopyTo(FastOpenCookie);
    }

    public static WireError Parse(ReadOnlySpan<byte> options, out TcpOptions parsed)
    {
        parsed = default;
        int i = 0;
        while (i < options.Length)
        {
            var kind = (TcpOptionKind)options[i];
            if (kind == TcpOptionKind.EndOfList) break;
            if (kind == TcpOptionKind.NoOperation) { i++; continue; }
            if (options.Length - i < 2) return WireError.BadOptionLength;
            int size = options[i + 1];
            if (size < 2 || size > options.Length - i) return WireError.BadOptionLength;
            parsed.ParseOne(kind, options.Slice(i + 2, size - 2));
            i += size;
        }
        return WireError.None;
    }

    private void ParseOne(TcpOptionKind kind, ReadOnlySpan<byte> value)
    {
        switch (kind)
        {
            case TcpOptionKind.MaximumSegmentSize when value.Length == 2:
                SetMss(BinaryPrimitives.ReadUInt16BigEndian(value));
                break;
            case TcpOptionKind.WindowScale when value.Length == 1:
                SetWindowScale(value[0]);
                break;
            case TcpOptionKind.SackPermitted when value.Length == 0:
                SackPermitted = true;
                break;
            case TcpOptionKind.Timestamp when value.Length == 8:
                SetTimestamp(BinaryPrimitives.ReadUInt32BigEndian(value), BinaryPrimitives.ReadUInt32BigEndian(value[4..]));
                break;
            case TcpOptionKind.Sack when value.Length >= 8 && value.Length % 8 == 0:
                SackBlockCount = 0;
                for (int b = 0; b + 8 <= value.Length && SackBlockCount < MaxSackBlocks; b += 8)
                    AddSack(new SackBlock(BinaryPrimitives.ReadUInt32BigEndian(value[b..]), BinaryPrimitives.ReadUInt32BigEndian(value[(b + 4)..])));
                break;
            case TcpOptionKind.FastOpen:
                ParseFastOpen(value, FastOpenEncoding.Rfc7413);
                break;
            case TcpOptionKind.Experimental when value.Length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(value) == FastOpenMagic:
                ParseFastOpen(value[2..], FastOpenEncoding.Experimental);
                break;
            case TcpOptionKind.MaximumSegmentSize or TcpOptionKind.WindowScale or TcpOptionKind.SackPermitted
                or TcpOptionKind.Timestamp or TcpOptionKind.Sack:
                SawMalformed = true;
                break;
            default:
                SawUnknown = true;
                break;
        }
    }

    /// <summary>
    /// tcp_parse_fastopen_option(): an even length of 4..16 is a cookie, 0 a cookie request;
    /// anything else is ignored.
    /// </summary>
    private void ParseFastOpen(ReadOnlySpan<byte> cookie, FastOpenEncoding encoding)
    {
        if (IsValidCookieLength(cookie.Length))
            SetFastOpenCookie(cookie, encoding);
        else
            SawMalformed = true;
    }

    private static bool IsValidCookieLength(int length) =>
        length == 0 || (length >= MinFastOpenCookie && length <= MaxFastOpenCookie && length % 2 == 0);

    /// <summary>Bytes <see cref="Write"/> will produce: always a multiple of 4.</summary>
    public readonly int EncodedLength
    {
        get
        {
            int n = HasMss ? 4 : 0;
            if (HasTimestamp) n += 12;               // [sackOK|NOP NOP] TS
            if (SackPermitted && !HasTimestamp) n += 4; // NOP NOP sackOK
            if (HasWindowScale) n += 4;              // NOP WS
            if (SackBlockCount > 0) n += 4 + 8 * SackBlockCount;
            if (FastOpen != FastOpenEncoding.None) n += (FastOpenOptionLength + 3) & ~3;
            return n;
        }
    }

    private readonly int FastOpenOptionLength => (FastOpen == FastOpenEncoding.Experimental ? 4 : 2) + FastOpenCookieLength;

    /// <summary>
    /// Writes the options in the order and 32-bit layout of Linux's tcp_options_write(), so
    /// our SYN reads "mss 1460,sackOK,TS val .. ecr 0,nop,wscale 7" in tcpdump exactly as the
    /// kernel's does. Returns the bytes written (<see cref="EncodedLength"/>).
    /// </summary>
    public readonly int Write(Span<byte> destination)
    {
        int p = 0;
        if (HasMss)
        {
            Put(destination, ref p, (byte)TcpOptionKind.MaximumSegmentSize, 4);
            BinaryPrimitives.WriteUInt16BigEndian(destination[p..], Mss);
            p += 2;
        }
        if (HasTimestamp)
        {
            // SACK-permitted rides in the two bytes that would otherwise be NOP padding.
            if (SackPermitted) Put(destination, ref p, (byte)TcpOptionKind.SackPermitted, 2);
            else Put(destination, ref p, (byte)TcpOptionKind.NoOperation, (byte)TcpOptionKind.NoOperation);
            Put(destination, ref p, (byte)TcpOptionKind.Timestamp, 10);
            BinaryPrimitives.WriteUInt32BigEndian(destination[p..], TsVal);
            BinaryPrimitives.WriteUInt32BigEndian(destination[(p + 4)..], TsEcr);
            p += 8;
        }
        if (SackPermitted && !HasTimestamp)
        {
            Put(destination, ref p, (byte)TcpOptionKind.NoOperation, (byte)TcpOptionKind.NoOperation);
            Put(destination, ref p, (byte)TcpOptionKind.SackPermitted, 2);
        }
        if (HasWindowScale)
        {
            Put(destination, ref p, (byte)TcpOptionKind.NoOperation, (byte)TcpOptionKind.WindowScale);
            Put(destination, ref p, 3, WindowScale);
        }
        if (SackBlockCount > 0)
        {
            Put(destination, ref p, (byte)TcpOptionKind.NoOperation, (byte)TcpOptionKind.NoOperation);
            Put(destination, ref p, (byte)TcpOptionKind.Sack, (byte)(2 + 8 * SackBlockCount));
            foreach (SackBlock block in Sacks)
            {
                BinaryPrimitives.WriteUInt32BigEndian(destination[p..], block.Left);
                BinaryPrimitives.WriteUInt32BigEndian(destination[(p + 4)..], block.Right);
                p += 8;
            }
        }
        if (FastOpen != FastOpenEncoding.None)
        {
            int length = FastOpenOptionLength;
            if (FastOpen == FastOpenEncoding.Experimental)
            {
                Put(destination, ref p, (byte)TcpOptionKind.Experimental, (byte)length);
                BinaryPrimitives.WriteUInt16BigEndian(destination[p..], FastOpenMagic);
                p += 2;
            }
            else
            {
                Put(destination, ref p, (byte)TcpOptionKind.FastOpen, (byte)length);
            }
            Cookie.CopyTo(destination[p..]);
            p += FastOpenCookieLength;
            // Cookie lengths are even, so the option ends 2 bytes short of a word or on one.
            if ((length & 3) == 2) Put(destination, ref p, (byte)TcpOptionKind.NoOperation, (byte)TcpOptionKind.NoOperation);
        }
        return p;
    }

    private static void Put(Span<byte> destination, ref int p, byte a, byte b)
    {
        destination[p] = a;
        destination[p + 1] = b;
        p += 2;
    }

    public readonly bool Equals(TcpOptions other) =>
        HasMss == other.HasMss && (!HasMss || Mss == other.Mss)
        && HasWindowScale == other.HasWindowScale && (!HasWindowScale || WindowScale == other.WindowScale)
        && SackPermitted == other.SackPermitted
        && HasTimestamp == other.HasTimestamp && (!HasTimestamp || (TsVal == other.TsVal && TsEcr == other.TsEcr))
        && Sacks.SequenceEqual(other.Sacks)
        && FastOpen == other.FastOpen && Cookie.SequenceEqual(other.Cookie)
        && SawUnknown == other.SawUnknown && SawMalformed == other.SawMalformed;

    public override readonly bool Equals(object? obj) => obj is TcpOptions o && Equals(o);

    /// <summary>Hashes only what <see cref="Equals(TcpOptions)"/> compares: a value left in an absent field must not count.</summary>
    public override readonly int GetHashCode() =>
        HashCode.Combine(HasMss ? Mss : -1, HasWindowScale ? WindowScale : -1, HasTimestamp ? HashCode.Combine(TsVal, TsEcr) : -1,
                         SackPermitted, SackBlockCount, FastOpen, FastOpenCookieLength);

    /// <summary>
    /// As tcpdump -v prints them (print-tcp.c), without the NOPs:
    /// "mss 1460,sackOK,TS val 1 ecr 0,wscale 7", "sack 2 {l:r}{l:r}", "tfo  cookie 0a0b0c0d"
    /// (two spaces, as tcpdump has them for kind 34), "exp-tfo cookiereq" for kind 254.
    /// </summary>
    public override readonly string ToString()
    {
        var parts = new List<string>();
        if (HasMss) parts.Add($"mss {Mss}");
        if (SackPermitted) parts.Add("sackOK");
        if (HasTimestamp) parts.Add($"TS val {TsVal} ecr {TsEcr}");
        if (HasWindowScale) parts.Add($"wscale {WindowScale}");
        if (SackBlockCount > 0)
            parts.Add($"sack {SackBlockCount} " + string.Concat(Sacks.ToArray().Select(b => $"{{{b.Left}:{b.Right}}}")));
        if (FastOpen != FastOpenEncoding.None)
        {
            string name = FastOpen == FastOpenEncoding.Experimental ? "exp-tfo" : "tfo ";
            parts.Add(FastOpenCookieLength == 0 ? $"{name} cookiereq" : $"{name} cookie {Convert.ToHexStringLower(Cookie)}");
        }
        return string.Join(",", parts);
    }
}
