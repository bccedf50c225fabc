using System.Runtime.InteropServices;

namespace TcpLab.Stack.Interop;

/// <summary>
/// The errno a <see cref="LibC"/> call left behind on this thread. Reading it allocates
/// nothing, so the hot paths of the links may keep it.
/// </summary>
public static class SystemError
{
    public static Errno Last => (Errno)Marshal.GetLastPInvokeError();

    /// <summary>
    /// An exception for the last failed call, e.g. <c>SystemError.LastAsException($"TUNSETIFF {name}")</c>
    /// gives "TUNSETIFF tl0: EPERM (Operation not permitted)".
    /// </summary>
    public static ErrnoException LastAsException(string operation) => new(operation, Last);
}

/// <summary>A libc call failed; <see cref="Errno"/> says why.</summary>
public sealed class ErrnoException(string operation, Errno errno)
    : IOException($"{operation}: {errno.WithDescription()}", (int)errno)
{
    public Errno Errno { get; } = errno;
}
