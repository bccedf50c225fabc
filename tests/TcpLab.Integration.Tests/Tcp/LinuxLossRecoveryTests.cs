using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using TcpLab.Integration.Tests.Support;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Time;
using Xunit.Abstractions;

namespace TcpLab.Integration.Tests.Tcp;

/// <summary>
/// Loss recovery against the real Linux kernel over TAP: the lab's fault stage drops 1% of the
/// TCP frames in both directions while 100 MB cross, each way round; both ends hash what they
/// send and receive. Only hang guards are timed.
/// </summary>
public class LinuxLossRecoveryTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Guard = TimeSpan.FromMinutes(5);
    private const long Bytes = 100L * 1024 * 1024;
    private static readonly FaultRule[] OnePercent = [FaultRule.Parse("drop proto=tcp p=0.01")];

    /// <summary>Writes <see cref="Bytes"/> seeded bytes through <paramref name="send"/>, hashing them.</summary>
    private static async Task<byte[]> SendAll(ulong seed, Func<ReadOnlyMemory<byte>, ValueTask> send)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var random = new DeterministicRandom(seed);
        var chunk = new byte[256 * 1024];
        for (long sent = 0; sent < Bytes; sent += chunk.Length)
        {
            random.NextBytes(chunk);
            hash.AppendData(chunk);
            await send(chunk);
        }
        return hash.GetHashAndReset();
    }

    /// <summary>Reads to the end of the stream, hashing; returns the hash and the byte count.</summary>
    private static async Task<(byte[] Hash, long Count)> ReceiveAll(Func<Memory<byte>, ValueTask<int>> receive)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long count = 0;
        int n;
        while ((n = await receive(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            count += n;
        }
        return (hash.GetHashAndReset(), count);
    }

    [NetAdminFact]
    public async Task The_managed_stack_sends_100_MB_to_Linux_through_1_percent_loss()
    {
        using var peer = new LinuxPeer(130, faults: OnePercent, record: false);
        using Socket listener = peer.LinuxSocket();
        listener.Bind(new IPEndPoint(IPAddress.Parse(peer.Network.KernelAddress), 5130));
        listener.Listen(1);
        Task<(byte[] Hash, long Count)> received = Task.Run(async () =>
        {
            using Socket connection = await listener.AcceptAsync();
            return await ReceiveAll(b => connection.ReceiveAsync(b));
        });
        using var client = new TcpSocket(peer.Stack);
        await client.ConnectAsync(peer.KernelAddress, 5130).WaitAsync(Guard);

        await SendAndCheck(peer, seed: 1, async b => await client.SendAsync(b), () => client.Shutdown(SocketShutdown.Send), received);
        Assert.True(peer.OnLoop(() => peer.Stack.Counters[Mib.TcpExtTCPSackRecovery]) > 0);
        Assert.True(peer.OnLoop(() => peer.Lab.Faults.RuleCounters[0].Affected) > 0);
    }

    [NetAdminFact]
    public async Task Linux_sends_100_MB_to_the_managed_stack_through_1_percent_loss()
    {
        using var peer = new LinuxPeer(131, faults: OnePercent, record: false);
        using var listener = new TcpSocket(peer.Stack);
        listener.Bind(5131);
        listener.Listen(1);
        Task<(byte[] Hash, long Count)> received = Task.Run(async () =>
        {
            using TcpSocket connection = await listener.AcceptAsync();
            return await ReceiveAll(b => connection.ReceiveAsync(b));
        });
        using Socket client = peer.LinuxSocket();
        await client.ConnectAsync(new IPEndPoint(peer.StackEndPointAddress, 5131)).WaitAsync(Guard);

        await SendAndCheck(peer, seed: 2, async b => await client.SendAsync(b), () => client.Shutdown(SocketShutdown.Send), received);
        // The managed receiver answered the holes with SACKs and the kernel repaired them.
        Assert.True(peer.OnLoop(() => peer.Stack.Counters[Mib.TcpExtTCPOFOQueue]) > 0);
    }

    /// <summary>Sends <see cref="Bytes"/> through <paramref name="send"/>, closes, and checks the far end got exactly that.</summary>
    private async Task SendAndCheck(LinuxPeer peer, ulong seed, Func<ReadOnlyMemory<byte>, ValueTask> send, Action shutdown,
                                    Task<(byte[] Hash, long Count)> received)
    {
        var watch = Stopwatch.StartNew();
        byte[] sent = await SendAll(seed, send).WaitAsync(Guard);
        shutdown();
        var (hash, count) = await received.WaitAsync(Guard);

        Assert.Equal(Bytes, count);
        Assert.Equal(sent, hash);
        Report(peer, watch);
    }

    private void Report(LinuxPeer peer, Stopwatch watch)
    {
        output.WriteLine($"100 MB in {watch.Elapsed.TotalSeconds:F1} s");
        foreach (var (name, value) in peer.OnLoop(() => peer.Stack.Counters.NonZero().Where(c => c.Key.StartsWith("Tcp", StringComparison.Ordinal)).ToList()))
            output.WriteLine($"{name} {value}");
        output.WriteLine(peer.Lab.Namespace.Exec("nstat", "-az", "TcpRetransSegs", "TcpExtTCPSackRecovery", "TcpExtTCPFastRetrans", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes", "TcpExtTCPDSACKRecv", "TcpExtTCPDSACKUndo", "TcpExtTCPFullUndo", "TcpExtTCPLossUndo", "TcpExtTCPSpuriousRTOs").StandardOutput);
    }
}
