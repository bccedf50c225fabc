using System.Net;
using System.Net.Sockets;
using TcpLab.Stack.Interop;

namespace TcpLab.Integration.Tests.Support;

/// <summary>A UDP socket of the kernel inside a test namespace (created there on a setns thread, then used from anywhere).</summary>
internal static class KernelUdpSocket
{
    public static Socket BindInside(string netnsPath, string address, int port)
    {
        Socket socket = NetworkNamespaceThread.Run(netnsPath, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        socket.Bind(new IPEndPoint(IPAddress.Parse(address), port));
        socket.ReceiveTimeout = (int)FrameCollector.DefaultTimeout.TotalMilliseconds; // hang guard
        return socket;
    }
}
