using System.Net.Sockets;
using System.Security.Cryptography;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Sockets;

/// <summary>The application-facing API, driven by async code running on the simulated loop.</summary>
public class SocketApiTests
{
    [Fact]
    public void An_echo_exchange_through_streams_with_async_code_on_the_loop()
    {
        var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(10) });
        var listener = new TcpSocket(net.Server);
        listener.Bind(7);
        listener.Listen(16);
        Task server = net.Loop.Spawn(async () =>
        {
            using TcpSocket connection = await listener.AcceptAsync();
            using TcpStream stream = connection.GetStream();
            var buffer = new byte[1024];
            int n;
            while ((n = await stream.ReadAsync(buffer)) > 0) await stream.WriteAsync(buffer.AsMemory(0, n));
        });
        byte[] payload = new byte[100_000];
        new DeterministicRandom(3).NextBytes(payload);
        var echoed = new MemoryStream();
        Task client = net.Loop.Spawn(async () =>
        {
            using var socket = new TcpSocket(net.Client);
            await socket.ConnectAsync(TwoHosts.ServerIp, 7);
            Task readAll = ReadAll(socket, echoed, payload.Length);
            await socket.SendAsync(payload);
            socket.Shutdown(SocketShutdown.Send);
            await readAll;
        });

        net.RunUntil(30);

        Assert.True(client.IsCompletedSuccessfully, client.Exception?.ToString() ?? "client did not finish");
        Assert.True(server.IsCompletedSuccessfully, server.Exception?.ToString() ?? "server did not finish");
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(echoed.ToArray()));
    }

    private static async Task ReadAll(TcpSocket socket, MemoryStream into, int expected)
    {
        var buffer = new byte[4096];
        while (into.Length < expected)
        {
            int n = await socket.ReceiveAsync(buffer);
            if (n == 0) break;
            into.Write(buffer, 0, n);
        }
    }

    [Fact]
    public void Connect_to_a_closed_port_fails_with_ECONNREFUSED()
    {
        var net = new TwoHosts();
        Task attempt = net.Loop.Spawn(async () =>
        {
            using var socket = new TcpSocket(net.Client);
            await socket.ConnectAsync(TwoHosts.ServerIp, 9);
        });
        net.RunUntil(1);
        Assert.Equal(Errno.ECONNREFUSED, Assert.IsType<TcpException>(attempt.Exception!.InnerException).Errno);
    }

    [Fact]
    public void Connect_to_an_address_nobody_owns_fails_with_EHOSTUNREACH_after_ARP_gives_up()
    {
        var net = new TwoHosts();
        double failedAt = 0;
        Task attempt = net.Loop.Spawn(async () =>
        {
            using var socket = new TcpSocket(net.Client);
            try { await socket.ConnectAsync(TcpLab.Stack.Wire.Ipv4Address.Parse("10.0.0.99"), 80); }
            finally { failedAt = net.Loop.Now.TotalSeconds; }
        });
        net.RunUntil(10);

        Assert.Equal(Errno.EHOSTUNREACH, Assert.IsType<TcpException>(attempt.Exception!.InnerException).Errno);
        Assert.Equal(3.0, failedAt, 6);   // ARP requests at 0, 1, 2 s; failure at 3 s
    }

    [Fact]
    public void A_reset_during_receive_surfaces_as_ECONNRESET()
    {
        var net = new TwoHosts();
        var listener = new TcpSocket(net.Server);
        listener.Bind(80);
        listener.Listen(16);
        net.Loop.Spawn(async () =>
        {
            TcpSocket accepted = await listener.AcceptAsync();
            await Task.Yield();
            accepted.Abort();
        });
        Task receive = net.Loop.Spawn(async () =>
        {
            var socket = new TcpSocket(net.Client);
            await socket.ConnectAsync(TwoHosts.ServerIp, 80);
            await socket.ReceiveAsync(new byte[10]);
        });
        net.RunUntil(1);
        Assert.Equal(Errno.ECONNRESET, Assert.IsType<TcpException>(receive.Exception!.InnerException).Errno);
    }
}
