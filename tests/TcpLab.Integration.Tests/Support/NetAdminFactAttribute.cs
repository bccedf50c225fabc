namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// A fact that needs to create network namespaces and TAP devices: root, or at least
/// CAP_NET_ADMIN and CAP_SYS_ADMIN, /dev/net/tun and iproute2, plus any program named.
/// Skips with the reason when something is missing.
/// </summary>
public sealed class NetAdminFactAttribute : FactAttribute
{
    public NetAdminFactAttribute(params string[] programs)
    {
        if (NetAdminEnvironment.Missing(programs) is { } reason) Skip = reason;
    }
}

internal static class NetAdminEnvironment
{
    // include/uapi/linux/capability.h
    private const int CapNetAdmin = 12;
    private const int CapSysAdmin = 21;

    private static readonly Lazy<string?> s_missingBasics = new(FindMissingBasics);

    /// <summary>Why the tests cannot run here, or null when they can.</summary>
    public static string? Missing(IEnumerable<string> programs) =>
        s_missingBasics.Value
        ?? programs.Where(p => FindOnPath(p) is null).Select(p => $"needs `{p}` on PATH ({PackageOf(p)})").FirstOrDefault();

    private static string? FindMissingBasics()
    {
        if (!OperatingSystem.IsLinux()) return "needs Linux (TAP devices and network namespaces)";
        ulong effective = EffectiveCapabilities();
        if ((effective & (1UL << CapNetAdmin)) == 0)
            return "needs CAP_NET_ADMIN (run as root): CapEff in /proc/self/status lacks bit 12";
        if ((effective & (1UL << CapSysAdmin)) == 0)
            return "needs CAP_SYS_ADMIN (run as root) for setns and `ip netns`: CapEff in /proc/self/status lacks bit 21";
        if (!File.Exists("/dev/net/tun")) return "needs /dev/net/tun (modprobe tun)";
        if (FindOnPath("ip") is null) return "needs the `ip` command (apt-get install iproute2)";
        return null;
    }

    /// <summary>The effective capability set, as the kernel reports it (not inferred from the uid).</summary>
    private static ulong EffectiveCapabilities()
    {
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        return line is null ? 0 : Convert.ToUInt64(line["CapEff:".Length..].Trim(), 16);
    }

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);

    private static string PackageOf(string program) => program switch
    {
        "ping" => "apt-get install iputils-ping",
        "ip" => "apt-get install iproute2",
        _ => "install it",
    };
}
