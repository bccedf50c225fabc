using System.Numerics;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The receive window a handshake offers, as tcp_select_initial_window() computes it: the
/// usable part of the receive buffer rounded down to whole MSS (64240 for a 131072-byte buffer
/// and MSS 1460; 65160 with MSS 1448 when timestamps take 12 bytes), and a window scale large
/// enough for the biggest buffer the socket could grow to (7 for tcp_rmem max 6 MiB).
/// </summary>
public static class InitialWindow
{
    /// <summary>TCP_MAX_WSCALE (RFC 7323 2.3).</summary>
    public const int MaxWindowScale = 14;

    /// <summary>
    /// tcp_win_from_space with the default scaling_ratio (TCP_DEFAULT_SCALING_RATIO, one half),
    /// which is what a handshake uses: no segment has been measured yet (see <see cref="ReceiveMemory"/>).
    /// </summary>
    public static int WindowFromSpace(int space) => ReceiveMemory.WindowFromSpace(ReceiveMemory.DefaultScalingRatio, space);

    /// <param name="space">Buffer space for the window (tcp_full_space).</param>
    /// <param name="mss">MSS the window is quantised to (our MSS minus timestamp option room).</param>
    /// <param name="windowClamp">0 for none, else the largest window (TCP_WINDOW_CLAMP, SO_RCVBUF).</param>
    /// <param name="scalingSpace">The largest buffer the socket may grow to: max(tcp_rmem[2], rmem_max).</param>
    public static (int Window, int Clamp, byte Scale) Select(int space, int mss, int windowClamp, bool windowScaleOk, int scalingSpace)
    {
        long clamp = windowClamp == 0 ? 65535L << MaxWindowScale : windowClamp;
        long offered = Math.Min(clamp, space);
        if (offered > mss) offered -= offered % mss;   // quantise to whole segments
        byte scale = 0;
        if (windowScaleOk)
        {
            long scaled = Math.Min(Math.Max(offered, scalingSpace), clamp);
            scale = (byte)Math.Clamp(BitOperations.Log2((ulong)Math.Max(scaled, 1)) - 15, 0, MaxWindowScale);
        }
        clamp = Math.Min(65535L << scale, clamp);
        return ((int)offered, (int)clamp, scale);
    }
}
