namespace TcpLab.Stack.Interop;

/// <summary>epoll_wait with a nanosecond timeout, on any kernel.</summary>
internal static unsafe class Epoll
{
    // Set once epoll_pwait2 turned out to be missing (kernel before 5.11, or glibc before 2.35).
    private static volatile bool s_pwait2Missing;

    /// <summary>
    /// Waits until a registered descriptor is ready or <paramref name="timeoutNanoseconds"/>
    /// passed (negative: wait forever). Uses epoll_pwait2 for its nanosecond timeout; where that
    /// is missing it falls back to epoll_wait with the timeout rounded up to whole milliseconds,
    /// so a timer is never woken for early. Returns the number of events, or -1 with errno set.
    /// </summary>
    public static int Wait(FileDescriptor epoll, EpollEvent* events, int maxEvents, long timeoutNanoseconds)
    {
        if (!s_pwait2Missing)
        {
            Timespec timeout = new()
            {
                Seconds = timeoutNanoseconds / 1_000_000_000,
                Nanoseconds = timeoutNanoseconds % 1_000_000_000,
            };
            try
            {
                int ready = LibC.EpollPwait2(epoll, events, maxEvents, timeoutNanoseconds < 0 ? null : &timeout, null);
                if (ready >= 0 || SystemError.Last != Errno.ENOSYS) return ready;
            }
            catch (EntryPointNotFoundException)
            {
                // glibc older than 2.35 has no wrapper; the kernel may still have the call,
                // but one fallback path is enough.
            }
            s_pwait2Missing = true;
        }
        return LibC.EpollWait(epoll, events, maxEvents, ToMillisecondsRoundedUp(timeoutNanoseconds));
    }

    /// <summary>epoll_wait's timeout: rounded up, so a wait never ends before the deadline; -1 stays "forever".</summary>
    internal static int ToMillisecondsRoundedUp(long timeoutNanoseconds) =>
        timeoutNanoseconds < 0 ? -1 : (int)Math.Min(int.MaxValue, timeoutNanoseconds / 1_000_000 + (timeoutNanoseconds % 1_000_000 == 0 ? 0 : 1));
}
