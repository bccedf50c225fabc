namespace TcpLab.Stack.Tcp;

/// <summary>
/// How Linux charges received data against sk_rcvbuf, and how much of a buffer it offers as
/// window. A received segment costs its skb's truesize, not its payload: the buffer the driver
/// put the frame in, plus struct sk_buff and skb_shared_info. The lab charges what
/// tun_build_skb() charges for a frame that came through a TAP device (the kernel on the other
/// side of the lab's own TAP sees exactly that), so the managed stack's windows are Linux's
/// behind a TAP: 2176 bytes for a 1514-byte frame.
/// <para>
/// The share of buffer memory offered as window is scaling_ratio/256 (tcp_win_from_space). It
/// starts at 1/2 (TCP_DEFAULT_SCALING_RATIO) and tcp_measure_rcv_mss() sets it to
/// payload/truesize of full-sized segments: 1448 × 256 / 2176 = 170 for MSS 1448, so a
/// 131072-byte buffer offers 87040 bytes. Kernels before 6.6 used tcp_adv_win_scale (a fixed
/// 1/2 by default) instead.
/// </para>
/// </summary>
public static class ReceiveMemory
{
    /// <summary>TCP_RMEM_TO_WIN_SCALE: scaling_ratio is a fraction of 2^8.</summary>
    public const int RatioShift = 8;

    /// <summary>TCP_DEFAULT_SCALING_RATIO: one half until a full-sized segment is measured.</summary>
    public const int DefaultScalingRatio = 1 << (RatioShift - 1);

    private const int CacheLine = 64;                                   // SMP_CACHE_BYTES
    private const int SkbHeadroom = 64 + 2;                             // TUN_RX_PAD: NET_SKB_PAD + NET_IP_ALIGN
    private const int SharedInfo = 320;                                 // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
    private const int SkBuff = 256;                                     // SKB_DATA_ALIGN(sizeof(struct sk_buff))

    /// <summary>
    /// truesize of the skb tun_build_skb() makes for an Ethernet frame of <paramref name="frameLength"/>
    /// bytes: build_skb over SKB_DATA_ALIGN(pad + len) + shared info, plus the sk_buff.
    /// </summary>
    public static int FrameTruesize(int frameLength) => Align(SkbHeadroom + frameLength) + SharedInfo + SkBuff;

    /// <summary>__tcp_win_from_space: the window <paramref name="space"/> bytes of buffer memory allow.</summary>
    public static int WindowFromSpace(int scalingRatio, int space) => (int)(((long)space * scalingRatio) >> RatioShift);

    /// <summary>__tcp_space_from_win: the buffer memory a window needs (the inverse).</summary>
    public static long SpaceFromWindow(int scalingRatio, long window) => (window << RatioShift) / scalingRatio;

    /// <summary>The ratio tcp_measure_rcv_mss() measures for a segment: len/truesize in 1/256 (at least 1).</summary>
    public static int MeasureRatio(int payload, int truesize) => Math.Max(1, (int)(((long)payload << RatioShift) / truesize));

    private static int Align(int n) => (n + CacheLine - 1) & ~(CacheLine - 1);
}
