using System.Buffers.Binary;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The server's Fast Open cookie secret (net/ipv4/tcp_fastopen.c): a cookie is SipHash of the
/// client's and the server's address under the primary key, 8 bytes. A backup key keeps the
/// cookies issued before a rotation valid: a SYN whose cookie matches only the backup key is
/// accepted and answered with a fresh cookie (TcpExtTCPFastOpenPassiveAltKey).
/// </summary>
public sealed class FastOpenKeys
{
    /// <summary>TCP_FASTOPEN_COOKIE_SIZE.</summary>
    public const int CookieSize = 8;

    private readonly DeterministicRandom _random;
    private SipHashKey _primary;
    private SipHashKey? _backup;

    internal FastOpenKeys(DeterministicRandom random)
    {
        _random = random;
        _primary = NewKey();
    }

    /// <summary>Key rotation as an administrator does it through net.ipv4.tcp_fastopen_key: a new primary, the old one kept as backup.</summary>
    public void Rotate()
    {
        _backup = _primary;
        _primary = NewKey();
    }

    /// <summary>__tcp_fastopen_cookie_gen_cipher under the primary key.</summary>
    public byte[] CookieFor(Ipv4Address client, Ipv4Address server) => Cookie(_primary, client, server);

    /// <summary>tcp_fastopen_cookie_gen_check: 1 when <paramref name="cookie"/> matches the primary key, 2 the backup, 0 neither.</summary>
    public int Check(ReadOnlySpan<byte> cookie, Ipv4Address client, Ipv4Address server)
    {
        if (cookie.Length != CookieSize) return 0;
        if (cookie.SequenceEqual(Cookie(_primary, client, server))) return 1;
        return _backup is { } backup && cookie.SequenceEqual(Cookie(backup, client, server)) ? 2 : 0;
    }

    private SipHashKey NewKey() => new(_random.NextUInt64(), _random.NextUInt64());

    private static byte[] Cookie(SipHashKey key, Ipv4Address client, Ipv4Address server)
    {
        Span<byte> addresses = stackalloc byte[8];
        client.Write(addresses);
        server.Write(addresses[4..]);
        var cookie = new byte[CookieSize];
        BinaryPrimitives.WriteUInt64LittleEndian(cookie, key.Hash(addresses));
        return cookie;
    }
}

/// <summary>What the client remembers about one server (tcp_fastopen_metrics in tcp_metrics.c).</summary>
public sealed record FastOpenCacheEntry
{
    /// <summary>The server's MSS from its last SYN-ACK (0 if none): sizes the data of the next SYN.</summary>
    public int Mss { get; internal set; }
    /// <summary>The last cookie the server gave, empty if none yet.</summary>
    public byte[] Cookie { get; internal set; } = [];
    /// <summary>The option encoding the next cookie request uses: 1 try the experimental kind 254, 2 back to RFC 7413.</summary>
    public int TryExperimental { get; internal set; }
    /// <summary>SYNs with data that got a SYN-ACK acknowledging neither data nor cookie after a timeout, in a row.</summary>
    public int SynLosses { get; internal set; }
    public Instant LastSynLoss { get; internal set; }
}

/// <summary>
/// The client's Fast Open cookie cache, one entry per (local, remote) address pair as Linux keys
/// its tcp_metrics (tcp_fastopen_cache_get / tcp_fastopen_cache_set).
/// </summary>
public sealed class FastOpenCookieCache
{
    private readonly Dictionary<(Ipv4Address Local, Ipv4Address Remote), FastOpenCacheEntry> _entries = new();

    public FastOpenCacheEntry? Find(Ipv4Address local, Ipv4Address remote) => _entries.GetValueOrDefault((local, remote));

    /// <summary>`ip tcp_metrics flush`: forget every server.</summary>
    public void Clear() => _entries.Clear();

    /// <summary>tcp_fastopen_cache_set: what a SYN-ACK taught us about its server.</summary>
    internal void Update(Ipv4Address local, Ipv4Address remote, int mss, ReadOnlySpan<byte> cookie, bool synLost, int tryExperimental, Instant now)
    {
        if (!_entries.TryGetValue((local, remote), out FastOpenCacheEntry? entry))
        {
            entry = new FastOpenCacheEntry();
            _entries.Add((local, remote), entry);
        }
        if (mss != 0) entry.Mss = mss;
        if (!cookie.IsEmpty) entry.Cookie = cookie.ToArray();
        else if (tryExperimental > entry.TryExperimental && entry.Cookie.Length == 0) entry.TryExperimental = tryExperimental;
        if (synLost)
        {
            entry.SynLosses++;
            entry.LastSynLoss = now;
        }
        else
        {
            entry.SynLosses = 0;
        }
    }
}

/// <summary>Why a client's Fast Open did not carry its data (tcpi_fastopen_client_fail).</summary>
public enum FastOpenClientFail
{
    None,
    /// <summary>TFO_COOKIE_UNAVAILABLE: no cookie cached, the SYN only asked for one.</summary>
    CookieUnavailable,
    /// <summary>TFO_DATA_NOT_ACKED: the SYN-ACK did not acknowledge the SYN's data.</summary>
    DataNotAcked,
    /// <summary>TFO_SYN_RETRANSMITTED: the SYN had to be retransmitted (without data) before the SYN-ACK came.</summary>
    SynRetransmitted,
}
