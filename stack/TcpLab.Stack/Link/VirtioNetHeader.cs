using System.Buffers.Binary;
using TcpLab.Stack.Buffers;

namespace TcpLab.Stack.Link;

/// <summary>
/// The 12-byte header a TAP opened with IFF_VNET_HDR and TUNSETVNETHDRSZ 12 puts in front of
/// every frame, in both directions: struct virtio_net_hdr_v1 (the same bytes as
/// virtio_net_hdr_mrg_rxbuf) from include/uapi/linux/virtio_net.h, little-endian.
/// <code>
///  0 flags        1 gso_type    2 hdr_len    4 gso_size
///  6 csum_start   8 csum_offset 10 num_buffers
/// </code>
/// </summary>
public static class VirtioNetHeader
{
    public const int Size = 12;

    private const byte FlagNeedsChecksum = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    private const byte FlagDataValid = 2;     // VIRTIO_NET_HDR_F_DATA_VALID
    private const byte GsoNone = 0;           // VIRTIO_NET_HDR_GSO_NONE
    private const byte GsoTcpV4 = 1;          // VIRTIO_NET_HDR_GSO_TCPV4

    /// <summary>Encodes <paramref name="offload"/> for a frame going to the kernel.</summary>
    public static void Write(Span<byte> header, in OffloadInfo offload)
    {
        header[0] = (byte)((offload.NeedsChecksum ? FlagNeedsChecksum : 0) | (offload.ChecksumVerified ? FlagDataValid : 0));
        header[1] = offload.Gso == GsoKind.TcpV4 ? GsoTcpV4 : GsoNone;
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], offload.HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], offload.GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], offload.ChecksumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], offload.ChecksumOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(header[10..], 0); // num_buffers: receive-side only
    }

    /// <summary>
    /// Decodes the header of a frame from the kernel. False for a GSO type the link did not
    /// negotiate (only TCPv4 is asked for), which the stack could not take apart.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> header, out OffloadInfo offload)
    {
        byte flags = header[0];
        byte gsoType = header[1];
        offload = new OffloadInfo
        {
            NeedsChecksum = (flags & FlagNeedsChecksum) != 0,
            ChecksumVerified = (flags & FlagDataValid) != 0,
            // For received frames the kernel fills hdr_len with skb_headlen, a hint, not an exact
            // header length (drivers/net/tun_vnet.h tun_vnet_hdr_from_skb).
            HeaderLength = BinaryPrimitives.ReadUInt16LittleEndian(header[2..]),
            GsoSize = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]),
            ChecksumStart = BinaryPrimitives.ReadUInt16LittleEndian(header[6..]),
            ChecksumOffset = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]),
            Gso = gsoType == GsoTcpV4 ? GsoKind.TcpV4 : GsoKind.None,
        };
        return gsoType is GsoNone or GsoTcpV4;
    }
}
