using System.Numerics;

namespace TcpLab.Stack.Time;

/// <summary>
/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64. Every random choice a run
/// makes (ISN secrets, ephemeral ports, loss draws) comes from one of these, derived from the
/// run's seed, so the same seed replays the same run. Its algorithm is fixed here rather than
/// left to System.Random, whose seeded output is not promised across .NET versions.
/// </summary>
public sealed class DeterministicRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public DeterministicRandom(ulong seed)
    {
        Seed = seed;
        ulong x = seed;
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    public ulong Seed { get; }

    /// <summary>
    /// An independent stream for one consumer (e.g. "client/isn"), so adding a draw in one
    /// place does not shift the numbers every other place sees.
    /// </summary>
    public DeterministicRandom Derive(string purpose)
    {
        // FNV-1a of the purpose, mixed with this stream's seed.
        ulong h = 14695981039346656037UL;
        foreach (char ch in purpose) h = (h ^ ch) * 1099511628211UL;
        return new DeterministicRandom(Seed ^ BitOperations.RotateLeft(h, 17) ^ 0x9E3779B97F4A7C15UL);
    }

    public ulong NextUInt64()
    {
        ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    public uint NextUInt32() => (uint)(NextUInt64() >> 32);

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [min, max), without modulo bias (Lemire's method).</summary>
    public int Next(int min, int max)
    {
        if (min >= max) return min;
        ulong range = (ulong)((long)max - min);
        UInt128 m = (UInt128)NextUInt64() * range;
        ulong low = (ulong)m;
        if (low < range)
        {
            ulong threshold = (0 - range) % range;
            while (low < threshold)
            {
                m = (UInt128)NextUInt64() * range;
                low = (ulong)m;
            }
        }
        return (int)((long)(m >> 64) + min);
    }

    public void NextBytes(Span<byte> buffer)
    {
        for (int i = 0; i < buffer.Length; i += 8)
        {
            ulong v = NextUInt64();
            for (int j = 0; j < 8 && i + j < buffer.Length; j++) buffer[i + j] = (byte)(v >> (8 * j));
        }
    }

    private static ulong SplitMix64(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
