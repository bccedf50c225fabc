using FsCheck.Fluent;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using static TcpLab.Stack.Tests.Wire.WireFrames;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>The vectorised checksum against the obvious RFC 1071 loop, and the RFC's own numbers.</summary>
public class InternetChecksumTests
{
    [Fact]
    public void Rfc1071_section_3_example_sums_to_ddf2()
    {
        // RFC 1071 3: 0001 + f203 + f4f5 + f6f7 = 2ddf0, folded ddf2; the checksum is its complement.
        byte[] data = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7];
        Assert.Equal(0xDDF2u, InternetChecksum.Sum(data));
        Assert.Equal(0x220D, InternetChecksum.Compute(data));
    }

    [Fact]
    public void Classic_ipv4_header_example_has_checksum_b861()
    {
        // The textbook header 192.168.0.1 -> 192.168.0.199, UDP, checksum field zeroed.
        byte[] header = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Assert.Equal(0xB861, InternetChecksum.Compute(header));
        header[10] = 0xB8;
        header[11] = 0x61;
        Assert.True(InternetChecksum.IsValid(header));
    }

    [Fact]
    public void Sum_equals_the_reference_for_every_length_to_2000_at_every_alignment()
    {
        var rng = new DeterministicRandom(1071);
        var buffer = new byte[2000 + 64];
        for (int length = 0; length <= 2000; length++)
        {
            rng.NextBytes(buffer);
            for (int pass = 0; pass < 2; pass++)
            {
                int offset = rng.Next(0, 64); // odd and unaligned starts too
                ReadOnlySpan<byte> data = buffer.AsSpan(offset, length);
                ushort expected = ReferenceSum(data);
                Assert.True(expected == InternetChecksum.Sum(data), $"length {length} offset {offset}: {InternetChecksum.Sum(data):x4} != {expected:x4}");
                Assert.Equal((ushort)~expected, InternetChecksum.Compute(data));
            }
        }
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0xFF)] // every add carries: the deferred carries must all come back
    [InlineData(0x80)]
    public void Sum_equals_the_reference_on_constant_data_that_stresses_carries(byte fill)
    {
        foreach (int length in new[] { 1, 2, 63, 64, 65, 127, 128, 1500, 9000, 65535 })
        {
            byte[] data = Enumerable.Repeat(fill, length).ToArray();
            Assert.True(ReferenceSum(data) == InternetChecksum.Sum(data), $"fill {fill:x2} length {length}");
        }
    }

    [Fact]
    public void Sum_with_an_initial_value_matches_the_reference_and_chains_over_even_splits() =>
        Holds(Together(AnyByte.ArrayOf(), AnyByte.ArrayOf(), Gen.Choose(0, 0xFFFF)), t =>
        {
            var (a, b, initial) = t;
            byte[] even = a.Length % 2 == 0 ? a : a[1..];
            byte[] joined = [.. even, .. b];
            Assert.Equal(ReferenceSum(a, (uint)initial), InternetChecksum.Sum(a, (uint)initial));
            Assert.Equal(InternetChecksum.Sum(joined), InternetChecksum.Sum(b, InternetChecksum.Sum(even)));
        }, t => $"a {Convert.ToHexString(t.Item1)} b {Convert.ToHexString(t.Item2)} initial {t.Item3:x4}");

    [Fact]
    public void Pseudo_header_sum_equals_the_reference_over_its_12_bytes() =>
        Holds(Together(AnyIpv4.Two(), AnyByte, Gen.Choose(0, 0xFFFF)), t =>
        {
            var ((source, destination), protocol, length) = t;
            Assert.Equal(ReferencePseudoHeaderSum(source, destination, length, protocol),
                         InternetChecksum.PseudoHeaderSum(source, destination, protocol, length));
        }, t => t.ToString());

    [Fact]
    public void Data_with_its_checksum_in_place_is_valid_and_any_single_bit_flip_is_not()
    {
        var rng = new DeterministicRandom(7);
        foreach (int length in new[] { 2, 3, 20, 61, 64, 100 })
        {
            byte[] data = new byte[length];
            rng.NextBytes(data);
            data[0] = data[1] = 0;
            ushort checksum = InternetChecksum.Compute(data);
            data[0] = (byte)(checksum >> 8);
            data[1] = (byte)checksum;
            Assert.True(InternetChecksum.IsValid(data));
            for (int bit = 0; bit < length * 8; bit++)
            {
                data[bit / 8] ^= (byte)(1 << (bit % 8));
                Assert.False(InternetChecksum.IsValid(data), $"length {length} bit {bit}");
                data[bit / 8] ^= (byte)(1 << (bit % 8));
            }
        }
    }

    [Fact]
    public void Fold_brings_any_64_bit_sum_to_16_bits_with_end_around_carry()
    {
        Assert.Equal(0u, InternetChecksum.Fold(0));
        Assert.Equal(0xFFFFu, InternetChecksum.Fold(0xFFFF));
        Assert.Equal(1u, InternetChecksum.Fold(0x10000));
        Assert.Equal(0xFFFFu, InternetChecksum.Fold(ulong.MaxValue));
        Assert.Equal(0x0003u, InternetChecksum.Fold(0x0001_0001_0001UL)); // 1 + 1 + 1
        Assert.Equal(0x0002u, InternetChecksum.Fold(0x1_0000_0001UL));    // 2^32 = 1 mod 0xFFFF
    }
}
