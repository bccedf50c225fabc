using System.Runtime.InteropServices;

namespace TcpLab.Stack.Interop;

/// <summary>
/// A Linux errno value that prints as its kernel name and strerror text, e.g.
/// "EPERM (Operation not permitted)". <see cref="Last"/> reads the errno of the most recent
/// <see cref="LibC"/> call on this thread; reading it allocates nothing, so hot paths may keep it.
/// </summary>
public readonly record struct Errno(int Value)
{
    // asm-generic/errno-base.h and asm-generic/errno.h: the values this project tests for.
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EINVAL = 22;
    public const int ENOSYS = 38;
    public const int ENETDOWN = 100;
    public const int ENOBUFS = 105;

    /// <summary>errno as the last <see cref="LibC"/> call on this thread left it.</summary>
    public static Errno Last => new(Marshal.GetLastPInvokeError());

    public bool IsError => Value != 0;

    /// <summary>The symbolic name ("EAGAIN"), or "errno N" for values without one here.</summary>
    public string Name => Value switch
    {
        0 => "0",
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        3 => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        6 => "ENXIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        20 => "ENOTDIR",
        EINVAL => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        28 => "ENOSPC",
        32 => "EPIPE",
        36 => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        77 => "EBADFD",
        88 => "ENOTSOCK",
        90 => "EMSGSIZE",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        ENETDOWN => "ENETDOWN",
        101 => "ENETUNREACH",
        ENOBUFS => "ENOBUFS",
        110 => "ETIMEDOUT",
        113 => "EHOSTUNREACH",
        _ => $"errno {Value}",
    };

    /// <summary>strerror(3) text.</summary>
    public string Description => Marshal.GetPInvokeErrorMessage(Value);

    public override string ToString() => Value == 0 ? "no error" : $"{Name} ({Description})";

    /// <summary>
    /// An exception for the last failed call, e.g. <c>Errno.LastAsException($"TUNSETIFF {name}")</c>
    /// gives "TUNSETIFF tl0: EPERM (Operation not permitted)".
    /// </summary>
    public static ErrnoException LastAsException(string operation) => new(operation, Last);
}

/// <summary>A libc call failed; <see cref="Errno"/> says why.</summary>
public sealed class ErrnoException(string operation, Errno errno)
    : IOException($"{operation}: {errno}", errno.Value)
{
    public Errno Errno { get; } = errno;
}
