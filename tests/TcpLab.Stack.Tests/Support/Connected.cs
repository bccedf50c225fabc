using TcpLab.Stack.Tcp;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>Sets up one established connection between the two hosts, in virtual time.</summary>
public static class Connected
{
    public static (TcpConnection Client, TcpConnection Server) Open(TwoHosts net, ushort port = 80,
        TcpSocketOptions? clientOptions = null, TcpSocketOptions? serverOptions = null)
    {
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, port, 128, serverOptions);
        TcpConnection client = net.Client.Tcp.Connect(TwoHosts.ServerIp, port, clientOptions);
        net.Loop.RunFor(TimeSpan.FromSeconds(10), () => listener.AcceptQueueLength > 0);
        TcpConnection server = listener.TryAccept() ?? throw new InvalidOperationException("handshake did not complete:\n" + net.Log.Dump());
        listener.Close();
        return (client, server);
    }

    /// <summary>Reads everything the connection holds now.</summary>
    public static byte[] ReadAll(TcpConnection connection)
    {
        var buffer = new byte[connection.ReadableBytes];
        int n = connection.Read(buffer);
        return buffer[..n];
    }
}
