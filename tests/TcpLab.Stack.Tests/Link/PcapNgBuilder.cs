using System.Buffers.Binary;
using System.Text;

namespace TcpLab.Stack.Tests.Link;

/// <summary>
/// Lays out pcapng blocks by hand, in either byte order, so tests can build what our writer
/// never produces: big-endian sections, other timestamp resolutions, Simple and obsolete Packet
/// Blocks, unknown blocks, and broken ones.
/// </summary>
public sealed class PcapNgBuilder
{
    private readonly MemoryStream _file = new();
    private bool _bigEndian;

    public PcapNgBuilder Section(bool bigEndian, ushort majorVersion = 1, params (ushort Code, byte[] Value)[] options)
    {
        _bigEndian = bigEndian;
        return Block(0x0A0D0D0A, [.. U32(0x1A2B3C4D), .. U16(majorVersion), .. U16(0), .. U64(ulong.MaxValue), .. Options(options)]);
    }

    public PcapNgBuilder Interface(ushort linkType, uint snapLength, params (ushort Code, byte[] Value)[] options) =>
        Block(1, [.. U16(linkType), .. U16(0), .. U32(snapLength), .. Options(options)]);

    public PcapNgBuilder EnhancedPacket(uint interfaceId, ulong timestamp, byte[] data, params (ushort Code, byte[] Value)[] options) =>
        Block(6, [.. U32(interfaceId), .. U32((uint)(timestamp >> 32)), .. U32((uint)timestamp),
            .. U32((uint)data.Length), .. U32((uint)data.Length), .. Padded(data), .. Options(options)]);

    public PcapNgBuilder ObsoletePacket(ushort interfaceId, ulong timestamp, byte[] data, params (ushort Code, byte[] Value)[] options) =>
        Block(2, [.. U16(interfaceId), .. U16(0), .. U32((uint)(timestamp >> 32)), .. U32((uint)timestamp),
            .. U32((uint)data.Length), .. U32((uint)data.Length), .. Padded(data), .. Options(options)]);

    public PcapNgBuilder SimplePacket(uint originalLength, byte[] data) => Block(3, [.. U32(originalLength), .. Padded(data)]);

    /// <summary>Any block: type, total length, body padded to 32 bits, total length.</summary>
    public PcapNgBuilder Block(uint type, byte[] body)
    {
        byte[] padded = Padded(body);
        _file.Write(U32(type));
        _file.Write(U32((uint)(12 + padded.Length)));
        _file.Write(padded);
        _file.Write(U32((uint)(12 + padded.Length)));
        return this;
    }

    public byte[] ToArray() => _file.ToArray();

    public byte[] U16(ushort value)
    {
        var bytes = new byte[2];
        if (_bigEndian) BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        else BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        return bytes;
    }

    public byte[] U32(uint value)
    {
        var bytes = new byte[4];
        if (_bigEndian) BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }

    public byte[] U64(ulong value)
    {
        var bytes = new byte[8];
        if (_bigEndian) BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        else BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return bytes;
    }

    public static (ushort, byte[]) Comment(string text) => (1, Encoding.UTF8.GetBytes(text));

    private byte[] Options((ushort Code, byte[] Value)[] options)
    {
        if (options.Length == 0) return [];
        var list = new List<byte>();
        foreach ((ushort code, byte[] value) in options)
        {
            list.AddRange(U16(code));
            list.AddRange(U16((ushort)value.Length));
            list.AddRange(Padded(value));
        }
        list.AddRange(new byte[4]); // opt_endofopt
        return [.. list];
    }

    private static byte[] Padded(byte[] data)
    {
        var padded = new byte[(data.Length + 3) & ~3];
        data.CopyTo(padded, 0);
        return padded;
    }
}
