using System.Buffers.Binary;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>
/// A test double of a TAP with IFF_VNET_HDR in front of another link: it advertises checksum and
/// segmentation offload, keeps a copy of every TSO superframe the stack hands it, and does what
/// the kernel does with it before passing it on (tcp_gso_segment / inet_gso_segment on the
/// superframe, skb_checksum_help on a partial checksum), so the link behind it sees ordinary,
/// fully checksummed frames, one per wire segment.
/// </summary>
/// <param name="keepCopies">Keep <see cref="Superframes"/> (off for allocation measurements).</param>
public sealed class SoftwareGsoLink(ILink inner, bool keepCopies = true) : ILink
{
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(inner.Info.Mtu);

    public LinkInfo Info { get; } = inner.Info with { Offloads = LinkOffloads.TxChecksum | LinkOffloads.TxTcpSegmentation };

    /// <summary>Every superframe as handed over, with its offload metadata.</summary>
    public List<(byte[] Frame, OffloadInfo Offload)> Superframes { get; } = new();

    public long SuperframeCount { get; private set; }

    public void Attach(IFrameHandler handler) => inner.Attach(handler);

    public void Transmit(PacketBuffer frame)
    {
        if (frame.Offload.Gso == GsoKind.None)
        {
            if (frame.Offload.NeedsChecksum) FinishChecksum(frame.Span, frame.Offload);
            frame.Offload = default;
            inner.Transmit(frame);
            return;
        }
        SuperframeCount++;
        if (keepCopies) Superframes.Add((frame.Span.ToArray(), frame.Offload));
        Split(frame);
        frame.Release();
    }

    private void Split(PacketBuffer superframe)
    {
        ReadOnlySpan<byte> bytes = superframe.Span;
        int headerLength = superframe.Offload.HeaderLength;
        int ipStart = EthernetFrame.HeaderLength;
        int tcpStart = ipStart + (bytes[ipStart] & 0x0F) * 4;
        int gsoSize = superframe.Offload.GsoSize;
        ReadOnlySpan<byte> payload = bytes[headerLength..];
        ushort firstId = BinaryPrimitives.ReadUInt16BigEndian(bytes[(ipStart + 4)..]);
        uint firstSeq = BinaryPrimitives.ReadUInt32BigEndian(bytes[(tcpStart + 4)..]);
        for (int offset = 0, i = 0; offset < payload.Length; offset += gsoSize, i++)
        {
            int length = Math.Min(gsoSize, payload.Length - offset);
            bool last = offset + length == payload.Length;
            PacketBuffer segment = _pool.Rent();
            Span<byte> frame = segment.Append(headerLength + length);
            bytes[..headerLength].CopyTo(frame);
            payload.Slice(offset, length).CopyTo(frame[headerLength..]);
            Span<byte> ip = frame[ipStart..tcpStart];
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(frame.Length - ipStart));
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(firstId + i));   // inet_gso_segment: id++
            ip[10] = ip[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip));
            Span<byte> tcp = frame[tcpStart..];
            BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], firstSeq + (uint)offset);
            // tcp_gso_segment: CWR only on the first segment, PSH and FIN only on the last.
            if (i > 0) tcp[13] &= unchecked((byte)~TcpFlags.Cwr);
            if (!last) tcp[13] &= unchecked((byte)~(TcpFlags.Psh | TcpFlags.Fin));
            var source = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]));
            var destination = new Ipv4Address(BinaryPrimitives.ReadUInt32BigEndian(ip[16..]));
            tcp[16] = tcp[17] = 0;   // it held the superframe's pseudo-header sum
            TcpHeader.WriteChecksum(tcp, source, destination);
            segment.Cause = superframe.Cause;
            segment.Timestamp = superframe.Timestamp;
            inner.Transmit(segment);
        }
    }

    private static void FinishChecksum(Span<byte> frame, in OffloadInfo offload)
    {
        int start = offload.ChecksumStart;
        BinaryPrimitives.WriteUInt16BigEndian(frame[(start + offload.ChecksumOffset)..], InternetChecksum.Compute(frame[start..]));
    }
}
