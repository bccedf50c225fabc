using System.Buffers.Binary;
using System.Numerics;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// SipHash-2-4 (Aumasson and Bernstein), the keyed hash Linux uses for ISNs, timestamp offsets,
/// ephemeral port offsets and syncookies (lib/siphash.c). Implemented here because .NET's
/// string/HashCode hashing is randomised per process and the lab must replay runs exactly.
/// </summary>
public readonly struct SipHashKey
{
    private readonly ulong _k0, _k1;

    public SipHashKey(ulong k0, ulong k1)
    {
        _k0 = k0;
        _k1 = k1;
    }

    public ulong Hash(ReadOnlySpan<byte> data)
    {
        ulong v0 = 0x736f6d6570736575UL ^ _k0;
        ulong v1 = 0x646f72616e646f6dUL ^ _k1;
        ulong v2 = 0x6c7967656e657261UL ^ _k0;
        ulong v3 = 0x7465646279746573UL ^ _k1;
        int end = data.Length & ~7;
        for (int i = 0; i < end; i += 8)
        {
            ulong m = BinaryPrimitives.ReadUInt64LittleEndian(data[i..]);
            v3 ^= m;
            Round(ref v0, ref v1, ref v2, ref v3);
            Round(ref v0, ref v1, ref v2, ref v3);
            v0 ^= m;
        }
        ulong last = (ulong)data.Length << 56;
        for (int i = 0; i < data.Length - end; i++) last |= (ulong)data[end + i] << (8 * i);
        v3 ^= last;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        v0 ^= last;
        v2 ^= 0xff;
        for (int i = 0; i < 4; i++) Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    /// <summary>Hash of a 4-tuple plus an optional extra word (e.g. a syncookie's count).</summary>
    public ulong Hash(FourTuple tuple, uint extra = 0)
    {
        Span<byte> buffer = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, tuple.LocalAddress.Value);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[4..], tuple.RemoteAddress.Value);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[8..], tuple.LocalPort);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[10..], tuple.RemotePort);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[12..], extra);
        return Hash(buffer);
    }

    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = BitOperations.RotateLeft(v1, 13); v1 ^= v0; v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3; v3 = BitOperations.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = BitOperations.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = BitOperations.RotateLeft(v1, 17); v1 ^= v2; v2 = BitOperations.RotateLeft(v2, 32);
    }
}
