using System.Runtime.InteropServices;

namespace TcpLab.Stack;

/// <summary>
/// Linux errno values (include/uapi/asm-generic/errno-base.h and errno.h) by their names, so the
/// lab reports "ETIMEDOUT" and "ECONNREFUSED" exactly where the kernel would, and so failed
/// libc calls name their errno the same way.
/// </summary>
public enum Errno
{
    None = 0,
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, EBADF = 9, EAGAIN = 11, ENOMEM = 12,
    EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, ENODEV = 19, ENOTDIR = 20, EINVAL = 22, ENFILE = 23,
    EMFILE = 24, ENOTTY = 25, ENOSPC = 28, EPIPE = 32, ENAMETOOLONG = 36, ENOSYS = 38, EPROTO = 71, EBADFD = 77,
    ENOTSOCK = 88, EMSGSIZE = 90, ENOPROTOOPT = 92, EPROTONOSUPPORT = 93, EOPNOTSUPP = 95, EAFNOSUPPORT = 97,
    EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETDOWN = 100, ENETUNREACH = 101, ECONNABORTED = 103, ECONNRESET = 104,
    ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ESHUTDOWN = 108, ETIMEDOUT = 110, ECONNREFUSED = 111,
    EHOSTUNREACH = 113, EALREADY = 114, EINPROGRESS = 115,
}

public static class ErrnoText
{
    /// <summary>strerror()'s words ("Connection refused"), from the C library.</summary>
    public static string Describe(this Errno errno) => errno == Errno.None ? "Success" : Marshal.GetPInvokeErrorMessage((int)errno);

    /// <summary>"EPERM (Operation not permitted)"; "errno N (...)" for a value without a name here.</summary>
    public static string WithDescription(this Errno errno) =>
        $"{(Enum.IsDefined(errno) ? errno.ToString() : $"errno {(int)errno}")} ({errno.Describe()})";
}
