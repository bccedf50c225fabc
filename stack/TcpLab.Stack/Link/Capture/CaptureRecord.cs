namespace TcpLab.Stack.Link.Capture;

/// <summary>One packet read from a capture file by <see cref="CaptureFileReader"/>.</summary>
/// <param name="InterfaceIndex">Index into <see cref="CaptureFileReader.Interfaces"/>; numbered across
/// the whole file, so interface 0 of a second pcapng section has the index after the first section's last.</param>
/// <param name="LinkType">What <paramref name="Data"/> starts with (Ethernet for our captures).</param>
/// <param name="Timestamp">Nanoseconds since 1970-01-01T00:00:00Z; 0 for a Simple Packet Block, which carries none.</param>
/// <param name="Data">The captured bytes (possibly cut to the snap length).</param>
/// <param name="OriginalLength">Length of the packet on the wire.</param>
/// <param name="Comment">The packet's opt_comment, several joined by '\n'; null when it has none.</param>
/// <param name="Direction">The direction bits of epb_flags, when the block carries them.</param>
public readonly record struct CaptureRecord(
    int InterfaceIndex,
    LinkType LinkType,
    long Timestamp,
    byte[] Data,
    long OriginalLength,
    string? Comment,
    PacketDirection Direction);

/// <summary>An interface of a capture file: a pcapng Interface Description Block, or the header of a classic pcap.</summary>
public sealed class CaptureInterface
{
    internal CaptureInterface(int index, LinkType linkType, uint snapLength, string? name, CaptureTimestampScale scale)
    {
        Index = index;
        LinkType = linkType;
        SnapLength = snapLength;
        Name = name;
        Scale = scale;
    }

    /// <summary>Position in <see cref="CaptureFileReader.Interfaces"/>.</summary>
    public int Index { get; }

    public LinkType LinkType { get; }

    /// <summary>Bytes kept of each packet; 0 means no limit.</summary>
    public uint SnapLength { get; }

    /// <summary>The if_name option, if any.</summary>
    public string? Name { get; }

    internal CaptureTimestampScale Scale { get; }

    public override string ToString() => $"#{Index} {Name ?? "(unnamed)"} {LinkType}";
}

/// <summary>
/// LINKTYPE_* values (tcpdump.org/linktypes.html) of the link layers a lab meets; any other
/// value read from a file is kept as its number.
/// </summary>
public enum LinkType : ushort
{
    Null = 0,
    Ethernet = 1,
    Raw = 101,
    LinuxCooked = 113,
    LinuxCookedV2 = 276,
}

/// <summary>The container format of a capture file.</summary>
public enum CaptureFileFormat
{
    /// <summary>Classic libpcap: one header, then records (tcpdump's default).</summary>
    Pcap,
    /// <summary>pcapng (draft-ietf-opsawg-pcapng): blocks, sections, interfaces, comments.</summary>
    PcapNg,
}
