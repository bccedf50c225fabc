namespace TcpLab.Stack;

/// <summary>
/// Linux errno values (include/uapi/asm-generic/errno.h) by their names, so the lab reports
/// "ETIMEDOUT" and "ECONNREFUSED" exactly where the kernel would.
/// </summary>
public enum Errno
{
    None = 0,
    EPERM = 1,
    EAGAIN = 11,
    ENOMEM = 12,
    EINVAL = 22,
    EPIPE = 32,
    EPROTO = 71,
    EMSGSIZE = 90,
    ENOPROTOOPT = 92,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETUNREACH = 101,
    ECONNABORTED = 103,
    ECONNRESET = 104,
    ENOBUFS = 105,
    EISCONN = 106,
    ENOTCONN = 107,
    ESHUTDOWN = 108,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    EHOSTUNREACH = 113,
    EALREADY = 114,
    EINPROGRESS = 115,
}

public static class ErrnoText
{
    /// <summary>strerror()'s words, as glibc prints them.</summary>
    public static string Describe(this Errno errno) => errno switch
    {
        Errno.None => "Success",
        Errno.EPERM => "Operation not permitted",
        Errno.EAGAIN => "Resource temporarily unavailable",
        Errno.ENOMEM => "Cannot allocate memory",
        Errno.EINVAL => "Invalid argument",
        Errno.EPIPE => "Broken pipe",
        Errno.EPROTO => "Protocol error",
        Errno.EMSGSIZE => "Message too long",
        Errno.ENOPROTOOPT => "Protocol not available",
        Errno.EADDRINUSE => "Address already in use",
        Errno.EADDRNOTAVAIL => "Cannot assign requested address",
        Errno.ENETUNREACH => "Network is unreachable",
        Errno.ECONNABORTED => "Software caused connection abort",
        Errno.ECONNRESET => "Connection reset by peer",
        Errno.ENOBUFS => "No buffer space available",
        Errno.EISCONN => "Transport endpoint is already connected",
        Errno.ENOTCONN => "Transport endpoint is not connected",
        Errno.ESHUTDOWN => "Cannot send after transport endpoint shutdown",
        Errno.ETIMEDOUT => "Connection timed out",
        Errno.ECONNREFUSED => "Connection refused",
        Errno.EHOSTUNREACH => "No route to host",
        Errno.EALREADY => "Operation already in progress",
        Errno.EINPROGRESS => "Operation now in progress",
        _ => errno.ToString(),
    };
}
