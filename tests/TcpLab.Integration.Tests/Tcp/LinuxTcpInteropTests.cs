using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using TcpLab.Integration.Tests.Support;
using static TcpLab.Integration.Tests.Support.Waiting;
using TcpLab.Stack;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Integration.Tests.Tcp;

/// <summary>
/// The managed TCP against the real Linux kernel over a TAP device, both ways round. Only
/// hang guards are timed: everything asserted is content, order or state.
/// </summary>
public class LinuxTcpInteropTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private const int Megabyte = 1 << 20;

    private static byte[] Data(ulong seed)
    {
        var data = new byte[Megabyte];
        new DeterministicRandom(seed).NextBytes(data);
        return data;
    }

    [NetAdminFact("ping")]
    public void Linux_pings_the_managed_stack_and_ARP_resolves_both_ways()
    {
        using var peer = new LinuxPeer(100);
        var ping = peer.Lab.Namespace.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", peer.Network.StackAddress);

        Assert.True(ping.Succeeded, ping.Describe() + ping.StandardOutput);
        Assert.Contains("3 received", ping.StandardOutput);
        string kernelNeighbours = peer.Lab.Namespace.Run("neigh", "show", "dev", "tl0");
        Assert.Contains(peer.Network.StackAddress, kernelNeighbours);
        Assert.True(peer.OnLoop(() => peer.Stack.Interfaces[0].Neighbours.TryGetMac(peer.KernelAddress, out _)));
        Assert.Equal(3, peer.OnLoop(() => peer.Stack.Counters[Mib.IcmpOutEchoReps]));
    }

    [NetAdminFact]
    public async Task A_Linux_client_and_a_managed_server_exchange_a_megabyte_each_way_and_close()
    {
        using var peer = new LinuxPeer(101);
        using var listener = new TcpSocket(peer.Stack);
        listener.Bind(5001);
        listener.Listen(16);
        byte[] up = Data(1), down = Data(2);

        Task<byte[]> server = Task.Run(async () =>
        {
            using TcpSocket connection = await listener.AcceptAsync();
            byte[] received = await ReadToEnd(b => connection.ReceiveAsync(b));
            await connection.SendAsync(down);
            connection.Close();
            return received;
        });
        using Socket client = peer.LinuxSocket();
        await client.ConnectAsync(new IPEndPoint(peer.StackEndPointAddress, 5001)).WaitAsync(Guard);
        await client.SendAsync(up.AsMemory()).AsTask().WaitAsync(Guard);
        client.Shutdown(SocketShutdown.Send);
        byte[] atClient = await ReadToEnd(b => client.ReceiveAsync(b)).WaitAsync(Guard);
        byte[] atServer = await server.WaitAsync(Guard);

        Assert.Equal(SHA256.HashData(up), SHA256.HashData(atServer));
        Assert.Equal(SHA256.HashData(down), SHA256.HashData(atClient));
        // Linux closed first (its FIN after its data), so the managed side went CLOSE_WAIT -> LAST_ACK.
        Assert.Contains(peer.States, s => s.To == TcpState.LastAck);
    }

    [NetAdminFact]
    public async Task A_managed_client_and_a_Linux_server_exchange_a_megabyte_each_way_and_the_managed_side_holds_TIME_WAIT()
    {
        using var peer = new LinuxPeer(102);
        using Socket listener = peer.LinuxSocket();
        listener.Bind(new IPEndPoint(IPAddress.Parse(peer.Network.KernelAddress), 5002));
        listener.Listen(16);
        byte[] up = Data(3), down = Data(4);

        Task<byte[]> server = Task.Run(async () =>
        {
            using Socket connection = await listener.AcceptAsync();
            byte[] received = await ReadToEnd(b => connection.ReceiveAsync(b));
            await connection.SendAsync(down);
            connection.Shutdown(SocketShutdown.Send);
            return received;
        });
        using var client = new TcpSocket(peer.Stack);
        await client.ConnectAsync(peer.KernelAddress, 5002).WaitAsync(Guard);
        await client.SendAsync(up).AsTask().WaitAsync(Guard);
        client.Shutdown(SocketShutdown.Send);               // the managed side closes first
        byte[] atClient = await ReadToEnd(b => client.ReceiveAsync(b)).WaitAsync(Guard);
        byte[] atServer = await server.WaitAsync(Guard);

        Assert.Equal(SHA256.HashData(up), SHA256.HashData(atServer));
        Assert.Equal(SHA256.HashData(down), SHA256.HashData(atClient));
        await Eventually(() => peer.OnLoop(() => peer.Stack.Tcp.Flows.Any(f => f.State == TcpState.TimeWait)));
        Assert.Equal(
            ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
            peer.States.Where(s => s.Tuple == client.Tuple).Select(s => s.To.ToNetstatName()));
    }

    [NetAdminFact]
    public async Task When_Linux_closes_first_the_kernel_holds_TIME_WAIT()
    {
        using var peer = new LinuxPeer(103);
        using var listener = new TcpSocket(peer.Stack);
        listener.Bind(5003);
        listener.Listen(16);
        Task<TcpSocket> accepted = listener.AcceptAsync();
        using Socket client = peer.LinuxSocket();
        await client.ConnectAsync(new IPEndPoint(peer.StackEndPointAddress, 5003)).WaitAsync(Guard);
        using TcpSocket server = await accepted.WaitAsync(Guard);

        client.Close();                                    // Linux: FIN first
        Assert.Equal(0, await server.ReceiveAsync(new byte[16]).AsTask().WaitAsync(Guard));
        server.Close();

        await Eventually(() => peer.KernelSockets().Contains("TIME-WAIT", StringComparison.Ordinal));
        await Eventually(() => peer.OnLoop(() => !peer.Stack.Tcp.Flows.Any()));
        Assert.Contains(peer.States, s => s.To == TcpState.CloseWait);
    }

    [NetAdminFact]
    public async Task Connecting_to_a_closed_port_is_refused_in_both_directions()
    {
        using var peer = new LinuxPeer(104);
        using var managed = new TcpSocket(peer.Stack);
        var refusedByLinux = await Assert.ThrowsAsync<TcpException>(() => managed.ConnectAsync(peer.KernelAddress, 9).WaitAsync(Guard));
        Assert.Equal(Errno.ECONNREFUSED, refusedByLinux.Errno);

        using Socket linux = peer.LinuxSocket();
        var refusedByManaged = await Assert.ThrowsAsync<SocketException>(() => linux.ConnectAsync(new IPEndPoint(peer.StackEndPointAddress, 9)).WaitAsync(Guard));
        Assert.Equal(SocketError.ConnectionRefused, refusedByManaged.SocketErrorCode);
        // The managed stack's reset is Linux's: [R.] seq 0, ack ISN+1, win 0.
        var reset = peer.Frames.TcpSegments().Single(s => s.Source == peer.StackAddress && (s.Flags & TcpFlags.Rst) != 0);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, reset.Flags);
    }

    [NetAdminFact]
    public async Task Linux_answers_the_managed_stacks_keepalive_probes()
    {
        using var peer = new LinuxPeer(105);
        using Socket listener = peer.LinuxSocket();
        listener.Bind(new IPEndPoint(IPAddress.Parse(peer.Network.KernelAddress), 5005));
        listener.Listen(16);
        Task<Socket> accepted = listener.AcceptAsync();
        using var client = new TcpSocket(peer.Stack, new TcpSocketOptions
        {
            KeepAlive = true, KeepIdle = TimeSpan.FromSeconds(1), KeepInterval = TimeSpan.FromSeconds(1), KeepCount = 3,
        });
        await client.ConnectAsync(peer.KernelAddress, 5005).WaitAsync(Guard);
        using Socket server = await accepted.WaitAsync(Guard);

        // More probes than TCP_KEEPCNT would have killed the connection had Linux not answered them.
        await Eventually(() => peer.OnLoop(() => peer.Stack.Counters[Mib.TcpExtTCPKeepAlive]) >= 5);

        Assert.Equal(TcpState.Established, peer.OnLoop(() => client.State));
        var segments = peer.Frames.TcpSegments();
        int probes = segments.Count(s => s.Comment?.StartsWith("keepalive probe", StringComparison.Ordinal) == true);
        int answers = segments.Count(s => s.Source == peer.KernelAddress && s.Flags == TcpFlags.Ack && s.Length == 0);
        Assert.True(answers >= probes - 1, $"{probes} probes, {answers} answers");
        Assert.All(segments.Where(s => s.Comment?.StartsWith("keepalive probe", StringComparison.Ordinal) == true),
                   s => Assert.Equal("keepalive probe 1/3", s.Comment));
    }
}
