using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link.Capture;

/// <summary>
/// Where capture points put the frames they see: <see cref="CaptureStage"/> records every
/// frame crossing a link, a fault stage records frames with its verdict. <see cref="PcapNgWriter"/>
/// is the sink that writes a file; a test may keep frames in a list instead.
/// <para>
/// Timestamps are absolute, in nanoseconds since the Unix epoch, so one sink can take frames from
/// several event loops each with its own epoch; <see cref="CaptureTime"/> converts a loop's
/// <see cref="Instant"/>. Calls come from the event loop thread; a sink is not thread-safe.
/// </para>
/// </summary>
public interface ICaptureSink
{
    /// <summary>Declares a captured interface; returns the id <see cref="Record"/> takes.</summary>
    /// <param name="name">Device name shown by Wireshark ("tap0", "sim:client").</param>
    /// <param name="snapLength">Frames longer than this are cut to it (their original length is kept).</param>
    int AddInterface(string name, int snapLength = PcapNgWriter.DefaultSnapLength);

    /// <summary>Records one Ethernet frame. The sink copies what it keeps; it does not hold on to <paramref name="frame"/>.</summary>
    /// <param name="interfaceId">An id returned by <see cref="AddInterface"/>.</param>
    /// <param name="timestamp">Nanoseconds since 1970-01-01T00:00:00Z.</param>
    /// <param name="direction">Which way the frame crossed the interface, if known.</param>
    /// <param name="frame">The frame, from its Ethernet header.</param>
    /// <param name="comment">Shown beside the packet (Wireshark's packet comment); empty for none.</param>
    void Record(int interfaceId, long timestamp, PacketDirection direction, ReadOnlySpan<byte> frame, ReadOnlySpan<char> comment);
}

/// <summary>Which way a frame crossed an interface: the direction bits of epb_flags (pcapng section 4.3.1).</summary>
public enum PacketDirection
{
    Unknown = 0,
    Inbound = 1,
    Outbound = 2,
}

/// <summary>Capture timestamps: nanoseconds since the Unix epoch.</summary>
public static class CaptureTime
{
    /// <summary>The capture timestamp of a wall-clock time (resolution 100 ns, that of <see cref="DateTimeOffset"/>).</summary>
    public static long UnixNanoseconds(DateTimeOffset time) => (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;

    /// <summary>
    /// The capture timestamp of <paramref name="instant"/> on <paramref name="loop"/>'s clock:
    /// the loop's <see cref="EventLoop.Epoch"/> plus the instant, keeping every nanosecond.
    /// </summary>
    public static long UnixNanoseconds(EventLoop loop, Instant instant) => UnixNanoseconds(loop.Epoch) + instant.Nanoseconds;
}
