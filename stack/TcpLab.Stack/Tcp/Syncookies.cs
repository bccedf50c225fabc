using System.Buffers.Binary;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// SYN cookies as net/ipv4/syncookies.c makes them: the ISN of a stateless SYN-ACK encodes
/// everything the listener needs to rebuild the request when the handshake's ACK returns.
/// <code>
///   cookie = H0(addresses, ports) + client ISN + (count &lt;&lt; 24)
///          + ((H1(addresses, ports, count) + MSS index) mod 2^24)
/// </code>
/// H0 and H1 are SipHash under two secret keys, count a minute counter (tcp_cookie_time), the
/// MSS index points into {536, 1300, 1440, 1460}. A cookie is good while the minute counter
/// has advanced by less than 2 (MAX_SYNCOOKIE_AGE): 60 to 120 s, depending on where in its
/// minute it was made. Window scale and SACK ride in the low 6 bits of the SYN-ACK's TSval
/// (cookie_init_timestamp) and come back in the ACK's TSecr; without timestamps they are lost.
/// </summary>
public sealed class Syncookies
{
    private const int CookieBits = 24;
    private const uint CookieMask = (1u << CookieBits) - 1;
    /// <summary>MAX_SYNCOOKIE_AGE: minute counts a cookie stays valid for.</summary>
    public const int MaxAgeMinutes = 2;
    /// <summary>TCP_SYNCOOKIE_PERIOD.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(60);
    /// <summary>TCP_SYNCOOKIE_VALID: how long after the last SYN queue overflow cookies are checked at all.</summary>
    public static readonly TimeSpan Valid = Period * MaxAgeMinutes;

    // The low bits of a cookie SYN-ACK's TSval: | timestamp ... | ECN | SACK | wscale (4 bits) |
    private const int TimestampBits = 6;
    private const uint WindowScaleMask = 0xF;   // 0xF: the SYN had no window scale option
    private const uint SackBit = 1 << 4;

    private readonly SipHashKey _addressKey;
    private readonly SipHashKey _countKey;

    internal Syncookies(DeterministicRandom random)
    {
        _addressKey = new SipHashKey(random.NextUInt64(), random.NextUInt64());
        _countKey = new SipHashKey(random.NextUInt64(), random.NextUInt64());
    }

    /// <summary>The MSS values a cookie can carry (msstab), sorted.</summary>
    public static ReadOnlySpan<ushort> MssTable => [536, 1300, 1440, 1460];

    /// <summary>tcp_cookie_time: whole minutes of the stack's clock.</summary>
    public static uint MinuteCount(Instant now) => (uint)(now.Nanoseconds / (Period.Ticks * 100));

    /// <summary>The largest table entry not above <paramref name="mss"/> (the first entry if all are).</summary>
    public static int MssIndex(int mss)
    {
        int index = MssTable.Length - 1;
        while (index > 0 && mss < MssTable[index]) index--;
        return index;
    }

    /// <summary>
    /// __cookie_v4_init_sequence: our ISN for a SYN from <paramref name="tuple"/>'s remote end.
    /// <paramref name="mss"/> is rounded down to the table value the cookie will give back.
    /// </summary>
    public SeqNum Make(FourTuple tuple, SeqNum clientIsn, ref ushort mss, Instant now)
    {
        int index = MssIndex(mss);
        mss = MssTable[index];
        uint count = MinuteCount(now);
        uint value = unchecked(Hash(_addressKey, tuple, 0) + clientIsn.Value + (count << CookieBits)
                               + ((Hash(_countKey, tuple, count) + (uint)index) & CookieMask));
        return new SeqNum(value);
    }

    /// <summary>
    /// __cookie_v4_check on an ACK: the MSS the cookie carries, or 0 when the cookie is forged
    /// or older than <see cref="MaxAgeMinutes"/> minute counts.
    /// </summary>
    public ushort Check(FourTuple tuple, SeqNum ackSeq, SeqNum seq, Instant now)
    {
        uint cookie = unchecked(ackSeq.Value - 1 - Hash(_addressKey, tuple, 0) - (seq.Value - 1));
        uint count = MinuteCount(now);
        uint age = unchecked(count - (cookie >> CookieBits)) & (uint.MaxValue >> CookieBits);
        if (age >= MaxAgeMinutes) return 0;
        uint index = unchecked(cookie - Hash(_countKey, tuple, count - age)) & CookieMask;
        return index < MssTable.Length ? MssTable[(int)index] : (ushort)0;
    }

    /// <summary>
    /// cookie_init_timestamp: the millisecond clock with its low 6 bits replaced by the
    /// options of the SYN, never ahead of the clock (later TSvals must not go backwards).
    /// </summary>
    public static uint EncodeTimestamp(uint clock, bool windowScaleOk, byte peerWindowScale, bool sackOk)
    {
        uint options = windowScaleOk ? peerWindowScale : WindowScaleMask;
        if (sackOk) options |= SackBit;
        uint ts = (clock >> TimestampBits << TimestampBits) | options;
        return ts > clock ? ts - (1u << TimestampBits) : ts;
    }

    /// <summary>
    /// cookie_timestamp_decode: the options of the original SYN from an ACK's TSecr (already
    /// less our timestamp offset). False when they name an option this host has switched off.
    /// </summary>
    public static bool DecodeTimestamp(uint tsEcr, bool sackEnabled, bool windowScalingEnabled,
                                       out bool sackOk, out bool windowScaleOk, out byte peerWindowScale)
    {
        sackOk = (tsEcr & SackBit) != 0;
        windowScaleOk = false;
        peerWindowScale = 0;
        if (sackOk && !sackEnabled) return false;
        if ((tsEcr & WindowScaleMask) == WindowScaleMask) return true;
        windowScaleOk = true;
        peerWindowScale = (byte)(tsEcr & WindowScaleMask);
        return windowScalingEnabled;
    }

    /// <summary>cookie_hash: siphash_4u32(saddr, daddr, sport &lt;&lt; 16 | dport, count) with the peer as source.</summary>
    private static uint Hash(SipHashKey key, FourTuple tuple, uint count)
    {
        Span<byte> words = stackalloc byte[16];
        tuple.RemoteAddress.Write(words);
        tuple.LocalAddress.Write(words[4..]);
        BinaryPrimitives.WriteUInt32LittleEndian(words[8..], (uint)tuple.RemotePort << 16 | tuple.LocalPort);
        BinaryPrimitives.WriteUInt32LittleEndian(words[12..], count);
        return (uint)key.Hash(words);
    }
}
