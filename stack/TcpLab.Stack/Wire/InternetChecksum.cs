using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TcpLab.Stack.Wire;

/// <summary>
/// The Internet checksum (RFC 1071): the 16-bit ones' complement of the ones' complement sum.
/// <para>
/// Two properties of that sum make it fast (RFC 1071 section 2): it does not depend on byte
/// order, so words are added in the CPU's native order and the result swapped once at the end;
/// and carries can be deferred, so 32-bit words are added into 64-bit lanes of a 256-bit vector
/// and folded to 16 bits only at the end.
/// </para>
/// Partial sums are plain <see cref="uint"/>s in network byte order (at most 0xFFFF after
/// <see cref="Fold"/>), so a header, a pseudo-header and a payload can be summed separately.
/// </summary>
public static class InternetChecksum
{
    /// <summary>The folded (not complemented) sum of <paramref name="data"/> in network order, plus <paramref name="initial"/>.</summary>
    public static uint Sum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        int evenLength = data.Length & ~1;
        ulong native = SumNative(data[..evenLength]);
        uint folded = Fold(native);
        // A native little-endian sum is the network-order sum with its two bytes swapped.
        uint sum = BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness((ushort)folded) : folded;
        if (evenLength != data.Length) sum += (uint)data[^1] << 8; // pad the odd byte with zero (RFC 1071 4.1)
        return Fold(sum + (ulong)initial);
    }

    /// <summary>Sum of the IPv4 pseudo-header (RFC 9293 section 3.1) for TCP/UDP checksums.</summary>
    public static uint PseudoHeaderSum(Ipv4Address source, Ipv4Address destination, byte protocol, int length)
    {
        ulong sum = (source.Value >> 16) + (source.Value & 0xFFFF)
                  + (destination.Value >> 16) + (destination.Value & 0xFFFF)
                  + protocol + (uint)length;
        return Fold(sum);
    }

    /// <summary>The checksum field value: the complement of the folded sum.</summary>
    public static ushort Complete(uint sum) => (ushort)~Fold(sum);

    /// <summary>The checksum field value for <paramref name="data"/> (with its checksum field zeroed).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data, uint initial = 0) => Complete(Sum(data, initial));

    /// <summary>True when <paramref name="data"/>, checksum field included, sums to 0xFFFF.</summary>
    public static bool IsValid(ReadOnlySpan<byte> data, uint initial = 0) => Sum(data, initial) == 0xFFFF;

    /// <summary>Folds carries back into the low 16 bits (end-around carry).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Fold(ulong sum)
    {
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        uint s = (uint)sum;
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return s;
    }

    /// <summary>Adds the 32-bit words of an even-length span in native byte order, carries deferred.</summary>
    private static ulong SumNative(ReadOnlySpan<byte> data)
    {
        ref byte start = ref MemoryMarshal.GetReference(data);
        int length = data.Length;
        int i = 0;
        ulong sum = 0;

        if (Vector256.IsHardwareAccelerated && length >= 64)
        {
            // Two independent accumulators hide the add latency; each 64-bit lane takes 2^32
            // 32-bit words before it could overflow, far beyond any frame.
            Vector256<ulong> acc0 = Vector256<ulong>.Zero, acc1 = Vector256<ulong>.Zero;
            for (; i + 64 <= length; i += 64)
            {
                var (a0, a1) = Vector256.Widen(Vector256.LoadUnsafe(ref start, (nuint)i).AsUInt32());
                var (b0, b1) = Vector256.Widen(Vector256.LoadUnsafe(ref start, (nuint)(i + 32)).AsUInt32());
                acc0 += a0 + b0;
                acc1 += a1 + b1;
            }
            sum = Vector256.Sum(acc0 + acc1);
        }
        for (; i + 8 <= length; i += 8)
        {
            ulong w = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i));
            sum += (w & 0xFFFF_FFFF) + (w >> 32);
        }
        if (i + 4 <= length)
        {
            sum += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, i));
            i += 4;
        }
        if (i + 2 <= length) sum += Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, i));
        return sum;
    }
}
