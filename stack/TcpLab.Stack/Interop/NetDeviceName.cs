namespace TcpLab.Stack.Interop;

/// <summary>The rules a Linux network device name must follow (net/core/dev.c dev_valid_name).</summary>
public static class NetDeviceName
{
    /// <summary>IFNAMSIZ less the terminating NUL.</summary>
    public const int MaxLength = LibC.IFNAMSIZ - 1;

    public static bool IsValid(string? name) =>
        !string.IsNullOrEmpty(name)
        && name.Length <= MaxLength
        && name is not ("." or "..")
        && name.All(c => c is > ' ' and < '\x7f' and not '/' and not ':');

    /// <summary>Throws <see cref="ArgumentException"/> naming the rule the name breaks.</summary>
    public static void Validate(string? name)
    {
        if (!IsValid(name))
            throw new ArgumentException(
                $"'{name}' is not a valid network device name: 1 to {MaxLength} printable ASCII characters, " +
                "no '/', ':' or spaces, not '.' or '..'", nameof(name));
    }
}
