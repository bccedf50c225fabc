namespace TcpLab.Stack.Settings;

/// <summary>
/// Binds a <see cref="Sysctls"/> property to its Linux key, the unit the kernel shows it in
/// under /proc/sys, and the range the kernel's handler accepts (net/ipv4/sysctl_net_ipv4.c).
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SysctlAttribute(string key) : Attribute
{
    public string Key { get; } = key;
    public long Min { get; init; } = 0;
    public long Max { get; init; } = int.MaxValue;
    public SysctlUnit Unit { get; init; } = SysctlUnit.None;
}

/// <summary>How a TimeSpan sysctl is written: the unit of the number in /proc/sys.</summary>
public enum SysctlUnit
{
    None,
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

/// <summary>A sysctl key or value the lab refuses, with the key and the allowed range in the message.</summary>
public sealed class SysctlException(string message) : Exception(message);
