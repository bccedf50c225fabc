namespace TcpLab.Stack.Tcp;

/// <summary>
/// Protection Against Wrapped Sequences (RFC 7323 section 5) with Linux's exceptions
/// (tcp_paws_check / tcp_paws_reject in include/net/tcp.h).
/// </summary>
internal static class Paws
{
    /// <summary>TCP_PAWS_WRAP: after 24 days without a timestamp the remembered one is meaningless.</summary>
    private static readonly TimeSpan Wrap = TimeSpan.FromDays(24);

    /// <summary>TCP_PAWS_MSL: a reset is believed even with an old timestamp after 60 s.</summary>
    private static readonly TimeSpan Msl = TimeSpan.FromSeconds(60);

    /// <summary>tcp_paws_check: the timestamp is acceptable (not older than ts_recent by more than <paramref name="window"/>).</summary>
    public static bool Check(uint tsRecent, uint tsVal, TimeSpan recentAge, int window = 0)
    {
        if (unchecked((int)(tsRecent - tsVal)) <= window) return true;
        if (recentAge >= Wrap) return true;
        // Some stacks send SYNs with TSval 0 and sensible values afterwards.
        return tsRecent == 0;
    }

    /// <summary>tcp_paws_reject: the segment must be dropped (a reset gets the benefit of the doubt after an MSL).</summary>
    public static bool Rejects(uint tsRecent, uint tsVal, TimeSpan recentAge, bool isReset)
    {
        if (Check(tsRecent, tsVal, recentAge)) return false;
        return !(isReset && recentAge >= Msl);
    }
}
