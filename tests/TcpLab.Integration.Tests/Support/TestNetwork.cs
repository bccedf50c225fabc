using System.Buffers.Binary;

namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// The addresses of one test: 10.77.N.0/24 with the kernel at .1 and the user-space side at .2,
/// and locally administered MACs 02:00:00:77:N:01 / :02. Every test uses its own N, so tests
/// running in parallel never share an address.
/// </summary>
internal readonly record struct TestNetwork(int N)
{
    public string KernelAddress => $"10.77.{N}.1";
    public string StackAddress => $"10.77.{N}.2";
    public string KernelCidr => KernelAddress + "/24";
    public uint KernelIp => Ip(1);
    public uint StackIp => Ip(2);
    public ulong KernelMac => Mac(1);
    public ulong StackMac => Mac(2);
    public string KernelMacText => MacText(KernelMac);
    public string StackMacText => MacText(StackMac);

    private uint Ip(int host) => (10u << 24) | (77u << 16) | ((uint)N << 8) | (uint)host;
    private ulong Mac(int host) => 0x0200_0077_0000UL | ((ulong)N << 8) | (uint)host;

    public static string MacText(ulong mac)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, mac);
        return Convert.ToHexString(bytes[2..]).ToLowerInvariant().Chunk(2).Select(c => new string(c)).Aggregate((a, b) => a + ":" + b);
    }
}
