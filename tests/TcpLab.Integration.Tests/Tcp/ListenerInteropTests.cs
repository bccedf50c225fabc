using System.Net;
using System.Net.Sockets;
using System.Text;
using TcpLab.Integration.Tests.Support;
using TcpLab.Stack;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Wire;
using static TcpLab.Integration.Tests.Support.Waiting;

namespace TcpLab.Integration.Tests.Tcp;

/// <summary>
/// Listener defences against the real kernel over TAP: TCP Fast Open both ways round,
/// syncookies both ways round, and what a Linux listener does when its accept queue overflows.
/// </summary>
public class ListenerInteropTests
{
    private static readonly byte[] Request = Encoding.ASCII.GetBytes("GET / HTTP/1.0\r\n\r\n");
    private static readonly byte[] Response = Encoding.ASCII.GetBytes("HTTP/1.0 200 OK\r\n\r\n");

    private static KeyValuePair<string, string>[] Kernel(params string[] assignments) =>
        assignments.Select(a => a.Split('=')).Select(p => new KeyValuePair<string, string>(p[0], p[1])).ToArray();

    private static bool IsSynFrom(TapSegment s, Ipv4Address source) => s.Source == source && s.Is(TcpFlags.Syn);

    [NetAdminFact]
    public async Task A_Linux_client_with_MSG_FASTOPEN_puts_its_data_in_the_SYN_to_a_managed_server_on_the_second_connection()
    {
        using var peer = new LinuxPeer(120, managed: s => s.TcpFastopen = 3, kernelSysctls: Kernel("net.ipv4.tcp_fastopen=3"));
        using var listener = new TcpSocket(peer.Stack, new TcpSocketOptions { FastOpenQueueLength = 16 });
        listener.Bind(5120);
        listener.Listen(16);
        Task<List<byte[]>> server = Task.Run(async () =>
        {
            var requests = new List<byte[]>();
            for (int i = 0; i < 2; i++)
            {
                using TcpSocket connection = await listener.AcceptAsync();
                var buffer = new byte[256];
                int n = await connection.ReceiveAsync(buffer);
                requests.Add(buffer[..n]);
                await connection.SendAsync(Response);
                connection.Close();
            }
            return requests;
        });

        var to = new IPEndPoint(peer.StackEndPointAddress, 5120);
        for (int i = 0; i < 2; i++)
        {
            using Socket client = peer.LinuxSocket();
            Assert.Equal(Request.Length, await Task.Run(() => KernelTcp.SendToFastOpen(client, Request, to)).WaitAsync(HangGuard));
            Assert.Equal(Response, await ReadToEnd(b => client.ReceiveAsync(b)).WaitAsync(HangGuard));
        }
        Assert.All(await server.WaitAsync(HangGuard), r => Assert.Equal(Request, r));

        var segments = peer.Frames.Segments();
        var syns = segments.Where(s => IsSynFrom(s, peer.KernelAddress)).ToList();
        Assert.Equal(2, syns.Count);
        // First: Linux asks for a cookie and sends nothing; the managed SYN-ACK brings one.
        Assert.Equal((0, 0), (syns[0].Length, syns[0].Header.Options.FastOpenCookieLength));
        Assert.NotEqual(FastOpenEncoding.None, syns[0].Header.Options.FastOpen);
        var synAcks = segments.Where(s => s.Source == peer.StackAddress && s.Is(TcpFlags.Syn | TcpFlags.Ack)).ToList();
        Assert.Equal(FastOpenKeys.CookieSize, synAcks[0].Header.Options.FastOpenCookieLength);
        // Second: the request rides in the SYN with that cookie, and the SYN-ACK acknowledges it.
        Assert.Equal(Request.Length, syns[1].Length);
        Assert.Equal(synAcks[0].Header.Options.Cookie.ToArray(), syns[1].Header.Options.Cookie.ToArray());
        Assert.Equal(syns[1].Header.SequenceNumber + 1 + (uint)Request.Length, synAcks[1].Header.AcknowledgmentNumber);
        Assert.Equal($"SYN-ACK accepting {Request.Length} bytes of Fast Open SYN data", synAcks[1].Comment);
        Assert.Equal((1L, 1L), peer.OnLoop(() => (peer.Stack.Counters[Mib.TcpExtTCPFastOpenCookieReqd], peer.Stack.Counters[Mib.TcpExtTCPFastOpenPassive])));
        Assert.Equal(1, KernelTcp.TcpExt(peer, "TCPFastOpenActive"));
    }

    [NetAdminFact]
    public async Task A_managed_client_puts_its_data_in_the_SYN_to_a_Linux_Fast_Open_server_on_the_second_connection()
    {
        using var peer = new LinuxPeer(121, managed: s => s.TcpFastopen = 3, kernelSysctls: Kernel("net.ipv4.tcp_fastopen=3"));
        using Socket listener = peer.LinuxSocket();
        KernelTcp.EnableFastOpen(listener, 16);
        listener.Bind(new IPEndPoint(IPAddress.Parse(peer.Network.KernelAddress), 5121));
        listener.Listen(16);
        Task<List<byte[]>> server = Task.Run(async () =>
        {
            var requests = new List<byte[]>();
            for (int i = 0; i < 2; i++)
            {
                using Socket connection = await listener.AcceptAsync();
                var buffer = new byte[256];
                int n = await connection.ReceiveAsync(buffer);
                requests.Add(buffer[..n]);
                await connection.SendAsync(Response);
                connection.Shutdown(SocketShutdown.Send);
            }
            return requests;
        });

        var clients = new List<TcpSocket>();
        for (int i = 0; i < 2; i++)
        {
            var client = new TcpSocket(peer.Stack);
            clients.Add(client);
            Assert.Equal(Request.Length, await client.ConnectWithDataAsync(peer.KernelAddress, 5121, Request).WaitAsync(HangGuard));
            Assert.Equal(Response, await ReadToEnd(b => client.ReceiveAsync(b)).WaitAsync(HangGuard));
            client.Close();
        }
        Assert.All(await server.WaitAsync(HangGuard), r => Assert.Equal(Request, r));

        var segments = peer.Frames.Segments();
        var syns = segments.Where(s => IsSynFrom(s, peer.StackAddress)).ToList();
        Assert.Equal(["connect(): SYN requesting a Fast Open cookie", $"connect(): Fast Open SYN with cookie and {Request.Length} bytes of data"],
                     syns.Select(s => s.Comment));
        var synAcks = segments.Where(s => s.Source == peer.KernelAddress && s.Is(TcpFlags.Syn | TcpFlags.Ack)).ToList();
        Assert.True(synAcks[0].Header.Options.FastOpenCookieLength > 0);
        Assert.Equal(synAcks[0].Header.Options.Cookie.ToArray(), syns[1].Header.Options.Cookie.ToArray());
        Assert.Equal(syns[1].Header.SequenceNumber + 1 + (uint)Request.Length, synAcks[1].Header.AcknowledgmentNumber);
        Assert.True(peer.OnLoop(() => clients[1].Connection!.SynDataAcked));
        Assert.Equal(1, peer.OnLoop(() => peer.Stack.Counters[Mib.TcpExtTCPFastOpenActive]));
        Assert.Equal(1, KernelTcp.TcpExt(peer, "TCPFastOpenPassive"));
        Assert.Equal(1, KernelTcp.TcpExt(peer, "TCPFastOpenCookieReqd"));
    }

    [NetAdminFact]
    public async Task A_Linux_client_completes_a_handshake_on_a_managed_syncookie_and_keeps_window_scale_and_SACK()
    {
        using var peer = new LinuxPeer(122, managed: s => s.TcpSyncookies = 2);
        using var listener = new TcpSocket(peer.Stack);
        listener.Bind(5122);
        listener.Listen(16);
        Task<TcpSocket> accepted = listener.AcceptAsync();
        using Socket client = peer.LinuxSocket();
        await client.ConnectAsync(new IPEndPoint(peer.StackEndPointAddress, 5122)).WaitAsync(HangGuard);
        using TcpSocket server = await accepted.WaitAsync(HangGuard);
        await client.SendAsync(Request.AsMemory()).AsTask().WaitAsync(HangGuard);
        var buffer = new byte[256];
        Assert.Equal(Request.Length, await server.ReceiveAsync(buffer).AsTask().WaitAsync(HangGuard));

        TapSegment syn = peer.Frames.Segments().Single(s => IsSynFrom(s, peer.KernelAddress));
        TapSegment synAck = peer.Frames.Segments().Single(s => s.Source == peer.StackAddress && s.Is(TcpFlags.Syn | TcpFlags.Ack));
        Assert.StartsWith("SYN-ACK with a syncookie", synAck.Comment);
        Assert.Equal((syn.Header.Options.WindowScale, true, true),
                     peer.OnLoop(() => (server.Connection!.SendWindowScale, server.Connection.SackOk, server.Connection.TimestampsOk)));
        Assert.Equal((1L, 1L, 0L), peer.OnLoop(() => (peer.Stack.Counters[Mib.TcpExtSyncookiesSent], peer.Stack.Counters[Mib.TcpExtSyncookiesRecv],
                                                     peer.Stack.Counters[Mib.TcpExtSyncookiesFailed])));
    }

    [NetAdminFact]
    public async Task A_managed_client_completes_a_handshake_on_a_Linux_syncookie()
    {
        using var peer = new LinuxPeer(125, kernelSysctls: Kernel("net.ipv4.tcp_syncookies=2"));
        using Socket listener = peer.LinuxSocket();
        listener.Bind(new IPEndPoint(IPAddress.Parse(peer.Network.KernelAddress), 5125));
        listener.Listen(16);
        Task<Socket> accepted = listener.AcceptAsync();
        using var client = new TcpSocket(peer.Stack);
        await client.ConnectAsync(peer.KernelAddress, 5125).WaitAsync(HangGuard);
        using Socket server = await accepted.WaitAsync(HangGuard);
        await client.SendAsync(Request).AsTask().WaitAsync(HangGuard);
        var buffer = new byte[256];
        Assert.Equal(Request.Length, await server.ReceiveAsync(buffer).WaitAsync(HangGuard));

        Assert.Equal(1, KernelTcp.TcpExt(peer, "SyncookiesSent"));
        Assert.Equal(1, KernelTcp.TcpExt(peer, "SyncookiesRecv"));
        Assert.True(peer.OnLoop(() => client.Connection!.SackOk));
    }

    /// <summary>
    /// A Linux listener with backlog 1 that never accepts: A connects first, then B and C at
    /// once; C's final ACK finds the accept queue full (the managed side is the clients).
    /// </summary>
    private static async Task<(TcpSocket B, TcpSocket C)> OverflowALinuxListener(LinuxPeer peer, Socket listener, int port)
    {
        listener.Bind(new IPEndPoint(IPAddress.Parse(peer.Network.KernelAddress), port));
        listener.Listen(1);
        var a = new TcpSocket(peer.Stack);
        await a.ConnectAsync(peer.KernelAddress, (ushort)port).WaitAsync(HangGuard);
        var b = new TcpSocket(peer.Stack);
        var c = new TcpSocket(peer.Stack);
        // Both SYNs leave in one turn of the loop, before the kernel's first SYN-ACK is read.
        Task[] connecting = peer.OnLoop(() => new[] { b.ConnectAsync(peer.KernelAddress, (ushort)port), c.ConnectAsync(peer.KernelAddress, (ushort)port) });
        await Task.WhenAll(connecting).WaitAsync(HangGuard);
        return (b, c);
    }

    [NetAdminFact]
    public async Task With_abort_on_overflow_0_Linux_drops_the_final_ACK_and_retransmits_its_SYN_ACK_to_a_client_that_believes_it_is_connected()
    {
        using var peer = new LinuxPeer(123);
        using Socket listener = peer.LinuxSocket();
        var (_, c) = await OverflowALinuxListener(peer, listener, 5123);
        ushort port = peer.OnLoop(() => c.Tuple!.Value.LocalPort);

        // Linux's SYN-ACK timer: a retransmission after 1 s and after 2 more; each is answered.
        await Eventually(() => peer.Frames.Segments().Count(s => s.Source == peer.KernelAddress && s.Header.DestinationPort == port
                                                                  && s.Is(TcpFlags.Syn | TcpFlags.Ack)) >= 3);
        await Eventually(() => peer.OnLoop(() => peer.Stack.Counters[Mib.TcpExtTCPSYNChallenge]) >= 2);

        Assert.Equal(TcpState.Established, peer.OnLoop(() => c.State));
        Assert.DoesNotContain(peer.Frames.Segments(), s => s.Source == peer.KernelAddress && (s.Header.Flags & TcpFlags.Rst) != 0);
        Assert.True(KernelTcp.TcpExt(peer, "ListenOverflows") >= 3);
        Assert.Contains("SYN-RECV", peer.KernelSockets());
    }

    [NetAdminFact]
    public async Task With_abort_on_overflow_1_Linux_resets_the_client_whose_final_ACK_finds_the_accept_queue_full()
    {
        using var peer = new LinuxPeer(124, kernelSysctls: Kernel("net.ipv4.tcp_abort_on_overflow=1"));
        using Socket listener = peer.LinuxSocket();
        var (b, c) = await OverflowALinuxListener(peer, listener, 5124);

        await Eventually(() => peer.OnLoop(() => c.State) == TcpState.Closed);
        Assert.Equal(Errno.ECONNRESET, peer.OnLoop(() => c.Connection!.Error));
        Assert.Equal(TcpState.Established, peer.OnLoop(() => b.State));
        TapSegment reset = Assert.Single(peer.Frames.Segments(), s => s.Source == peer.KernelAddress && (s.Header.Flags & TcpFlags.Rst) != 0);
        Assert.Equal(TcpFlags.Rst, reset.Header.Flags);
        Assert.Equal(1, KernelTcp.TcpExt(peer, "ListenOverflows"));
        Assert.Equal(1, KernelTcp.TcpExt(peer, "EmbryonicRsts"));
    }
}
