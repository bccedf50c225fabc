using System.Runtime.ExceptionServices;

namespace TcpLab.Stack.Interop;

/// <summary>
/// Runs code inside another network namespace without moving the process there.
/// <para>
/// setns(2) changes the namespace of the calling thread only (a thread is a task to the
/// kernel), so the work runs on a short-lived thread of its own that enters the namespace and
/// then exits; no pooled thread is ever left in a foreign namespace. Whatever the work opens
/// stays in that namespace after the thread is gone: a socket records its namespace when it is
/// created (sock_net), and /dev/net/tun records it at open (drivers/net/tun.c tun_chr_open).
/// </para>
/// </summary>
public static class NetworkNamespaceThread
{
    /// <param name="netnsPath">A namespace file, e.g. /run/netns/NAME as made by <c>ip netns add</c>.</param>
    public static T Run<T>(string netnsPath, Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(netnsPath);
        ArgumentNullException.ThrowIfNull(work);
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using FileDescriptor ns = LibC.Open(netnsPath, LibC.O_RDONLY | LibC.O_CLOEXEC);
                if (ns.IsInvalid) throw SystemError.LastAsException($"open {netnsPath}");
                if (LibC.Setns(ns, LibC.CLONE_NEWNET) < 0) throw SystemError.LastAsException($"setns {netnsPath}");
                result = work();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        })
        {
            Name = "tcplab-netns",
            IsBackground = true,
        };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }
}
