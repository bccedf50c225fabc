using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using TcpLab.Integration.Tests.Support;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Integration.Tests.Tcp;

/// <summary>
/// Bulk transfers over a TAP opened with IFF_VNET_HDR and offloads (TUN_F_CSUM | TUN_F_TSO4):
/// the kernel hands the managed stack GRO superframes with partial checksums, and the managed
/// stack leaves its checksums to the kernel. What arrives must be exactly what was sent.
/// </summary>
public class OffloadTransferTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);
    private const int Size = 8 << 20;

    [NetAdminFact]
    public async Task Eight_megabytes_each_way_arrive_intact_with_offload_enabled()
    {
        using var peer = new LinuxPeer(140, offload: true);
        var block = new byte[1 << 20];
        new DeterministicRandom(140).NextBytes(block);
        byte[] expected = RepeatedHash(block, Size);

        // Linux -> managed: the managed server hashes what it reads.
        var done = new TaskCompletionSource<BulkSink>(TaskCreationOptions.RunContinuationsAsynchronously);
        peer.OnLoop(() =>
        {
            ListenSocket listener = peer.Stack.Tcp.Listen(Ipv4Address.Any, 5140, 16);
            listener.Acceptable += l =>
            {
                if (l.TryAccept() is not { } connection) return;
                var sink = new BulkSink(connection, hash: true);
                sink.Completed += s => done.TrySetResult(s);
            };
            return 0;
        });
        using (Socket client = peer.LinuxSocket())
        {
            await client.ConnectAsync(new IPEndPoint(peer.StackEndPointAddress, 5140)).WaitAsync(Guard);
            for (int sent = 0; sent < Size; sent += block.Length) await client.SendAsync(block.AsMemory()).AsTask().WaitAsync(Guard);
            client.Shutdown(SocketShutdown.Send);
            BulkSink sink = await done.Task.WaitAsync(Guard);
            Assert.Equal(Size, peer.OnLoop(() => sink.BytesRead));
            Assert.Equal(expected, peer.OnLoop(() => sink.Sha256));
        }
        // The kernel sent superframes (several MSS in one frame), which the stack took whole.
        Assert.Contains(peer.Frames.TcpSegments(), s => s.Source == peer.KernelAddress && s.Length > 1460);

        // managed -> Linux: the kernel checks (and here finishes) every checksum the stack left partial.
        var (received, sha256, _) = await SendToLinux(peer, 5141, block, Size);
        Assert.Equal(Size, received);
        Assert.Equal(expected, sha256);
    }

    /// <summary>
    /// managed -> Linux with TSO: no capture or fault rules (they would turn it off), so runs of
    /// full segments go to the TAP as GSO superframes, which the kernel takes as GSO packets.
    /// </summary>
    [NetAdminFact]
    public async Task Sixty_four_megabytes_to_Linux_arrive_intact_in_TSO_superframes()
    {
        const int size = 64 << 20;
        using var peer = new LinuxPeer(141, offload: true, record: false);
        var block = new byte[1 << 20];
        new DeterministicRandom(141).NextBytes(block);

        var (received, sha256, source) = await SendToLinux(peer, 5142, block, size);
        Assert.Equal(size, received);
        Assert.Equal(RepeatedHash(block, size), sha256);

        var (segments, superframes) = peer.OnLoop(() => (source.Connection.SegmentsOut, source.Connection.SuperframesOut));
        var (framesOut, txErrors) = peer.OnLoop(() => (peer.Lab.Device.FramesOut, peer.Lab.Device.TxErrors));
        Assert.Equal(0, txErrors);   // the kernel took every superframe (tun_get_user would say EINVAL)
        Assert.True(superframes > 100, $"{superframes} superframes of {segments} segments");
        // Most segments left inside superframes: far fewer frames than segments went through the TAP.
        Assert.True(framesOut < segments / 3, $"{framesOut} frames written for {segments} segments ({superframes} superframes)");
    }
    /// <summary>
    /// A managed client sends <paramref name="size"/> bytes (<paramref name="block"/> over and
    /// over) to a Linux server socket, which reads until EOF: what it read, its SHA-256, and the
    /// sender for its counters.
    /// </summary>
    private static async Task<(long Received, byte[] Sha256, BulkSource Source)> SendToLinux(LinuxPeer peer, ushort port, byte[] block, long size)
    {
        using Socket listenerSocket = peer.LinuxSocket();
        listenerSocket.Bind(new IPEndPoint(IPAddress.Parse(peer.Network.KernelAddress), port));
        listenerSocket.Listen(4);
        Task<Socket> accepted = listenerSocket.AcceptAsync();
        BulkSource source = peer.OnLoop(() => new BulkSource(peer.Stack.Tcp.Connect(peer.KernelAddress, port), block, size));
        using Socket server = await accepted.WaitAsync(Guard);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 18];
        long received = 0;
        int n;
        while ((n = await server.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Guard)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            received += n;
        }
        return (received, hash.GetCurrentHash(), source);
    }

    /// <summary>SHA-256 of <paramref name="block"/> repeated to <paramref name="size"/> bytes.</summary>
    private static byte[] RepeatedHash(byte[] block, long size)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long i = 0; i < size / block.Length; i++) hash.AppendData(block);
        return hash.GetCurrentHash();
    }
}
