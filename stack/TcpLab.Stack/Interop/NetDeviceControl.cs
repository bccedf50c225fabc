namespace TcpLab.Stack.Interop;

/// <summary>
/// Interface settings through the classic SIOC* ioctls on a throwaway datagram socket, in the
/// calling thread's network namespace (what ifconfig does; net/core/dev_ioctl.c).
/// </summary>
internal static unsafe class NetDeviceControl
{
    public static int GetMtu(string interfaceName)
    {
        IfReq request = IfReq.ForName(interfaceName);
        IoctlOnControlSocket(LibC.SIOCGIFMTU, ref request, "SIOCGIFMTU");
        return request.Mtu;
    }

    public static void SetMtu(string interfaceName, int mtu)
    {
        IfReq request = IfReq.ForName(interfaceName);
        request.Mtu = mtu;
        IoctlOnControlSocket(LibC.SIOCSIFMTU, ref request, $"SIOCSIFMTU {mtu}");
    }

    private static void IoctlOnControlSocket(nuint command, ref IfReq request, string operation)
    {
        using FileDescriptor socket = LibC.Socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
        if (socket.IsInvalid) throw SystemError.LastAsException("socket AF_INET");
        fixed (IfReq* pointer = &request)
        {
            if (LibC.Ioctl(socket, command, (nint)pointer) < 0)
                throw SystemError.LastAsException($"{operation} {request.GetName()}");
        }
    }
}
