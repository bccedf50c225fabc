using System.Security.Cryptography;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>Bulk data in both directions, with and without loss, and the data retransmission budget.</summary>
public class TransferTests
{
    /// <summary>Pumps <paramref name="data"/> through <paramref name="from"/> and reads it at <paramref name="to"/>, in virtual time.</summary>
    internal static byte[] Transfer(TwoHosts net, TcpConnection from, TcpConnection to, byte[] data, TimeSpan limit)
    {
        var received = new MemoryStream();
        int written = 0;
        var chunk = new byte[65536];
        Instant deadline = net.Loop.Now + limit;
        while (received.Length < data.Length && net.Loop.Now < deadline)
        {
            if (written < data.Length) written += from.Write(data.AsSpan(written, Math.Min(64 * 1024, data.Length - written)));
            net.Loop.RunFor(TimeSpan.FromMilliseconds(1));
            int n;
            while ((n = to.Read(chunk)) > 0) received.Write(chunk, 0, n);
        }
        return received.ToArray();
    }

    private static byte[] RandomBytes(int length, ulong seed)
    {
        var data = new byte[length];
        new DeterministicRandom(seed).NextBytes(data);
        return data;
    }

    [Fact]
    public void A_megabyte_each_way_arrives_intact()
    {
        var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(5), RateBitsPerSecond = 100_000_000 });
        var (client, server) = Connected.Open(net);
        byte[] up = RandomBytes(1 << 20, 1), down = RandomBytes(1 << 20, 2);

        byte[] atServer = Transfer(net, client, server, up, TimeSpan.FromSeconds(30));
        byte[] atClient = Transfer(net, server, client, down, TimeSpan.FromSeconds(30));

        Assert.Equal(SHA256.HashData(up), SHA256.HashData(atServer));
        Assert.Equal(SHA256.HashData(down), SHA256.HashData(atClient));
        Assert.All(net.Log.Segments, s => Assert.True(s.Length <= 1448, $"segment of {s.Length} bytes"));
        Assert.Equal(0, net.Client.Counters[Mib.TcpRetransSegs]);
    }

    [Fact]
    public void Data_survives_random_loss_in_both_directions_through_RTO_recovery()
    {
        var random = new DeterministicRandom(7);
        var net = new TwoHosts(wire: WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(2) },
                               serverLink: link => new FilterLink(link) { DropIncoming = v => v.IsTcp && random.NextDouble() < 0.05 },
                               clientLink: link => new FilterLink(link) { DropIncoming = v => v.IsTcp && random.NextDouble() < 0.05 });
        var (client, server) = Connected.Open(net);
        byte[] data = RandomBytes(200_000, 3);

        byte[] received = Transfer(net, client, server, data, TimeSpan.FromSeconds(600));

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.True(net.Client.Counters[Mib.TcpRetransSegs] > 0);
    }

    [Fact]
    public void Unacknowledged_data_is_retransmitted_with_doubling_RTO_until_the_tcp_retries2_budget_of_924_6s()
    {
        // ack-loss-data: after the handshake every TCP segment to the server is dropped (as by
        // iptables; ARP still works, or the error would be EHOSTUNREACH once ARP gave up).
        bool cut = false;
        var net = new TwoHosts(client: s => s.LabHz = 0,
                               serverLink: link => new FilterLink(link) { DropIncoming = v => cut && v.IsTcp });
        var clientStates = new StateLog(net.Client);
        var (client, _) = Connected.Open(net);
        net.RunUntil(1);
        cut = true;
        client.Write("123456"u8);
        net.RunUntil(2000);

        var sends = net.Log.From(TwoHosts.ClientIp).Where(s => s.Length == 6).ToList();
        Assert.Equal(1.0, sends[0].At.TotalSeconds, 6);
        // First a tail loss probe, 2 × srtt + tcp_rto_min after the lone segment (srtt is ~0 here);
        // the RTO restarts from the probe.
        Assert.StartsWith("tail loss probe", sends[1].Comment);
        Assert.Equal(1.2, sends[1].At.TotalSeconds, 3);
        var timeouts = sends.Skip(2).Select(s => s.At.TotalSeconds).ToList();
        Assert.All(sends.Skip(2), s => Assert.StartsWith("RTO: retransmit", s.Comment));
        Assert.Equal(1.4, timeouts[0], 3);
        // Each retransmission waits twice as long as the one before, up to tcp_rto_max (120 s).
        double[] gaps = new[] { timeouts[0] - sends[1].At.TotalSeconds }.Concat(timeouts.Zip(timeouts.Skip(1), (a, b) => b - a)).ToArray();
        for (int i = 1; i < gaps.Length; i++)
            Assert.Equal(Math.Min(gaps[i - 1] * 2, 120), gaps[i], 3);
        // ETIMEDOUT at the first timeout at least 924.6 s (tcp_model_timeout(15, 200 ms)) after the
        // first retransmission by RTO (retrans_stamp; a loss probe does not set it).
        double diedAt = clientStates.When(client.Tuple, TcpState.Closed);
        Assert.Equal(Errno.ETIMEDOUT, client.Error);
        Assert.Equal(timeouts[^1] + Math.Min(gaps[^1] * 2, 120), diedAt, 3);
        Assert.True(diedAt - timeouts[0] >= 924.6 && timeouts[^1] - timeouts[0] < 924.6, $"died at {diedAt}");
        Assert.Equal(1, net.Client.Counters[Mib.TcpExtTCPAbortOnTimeout]);
    }

    [Fact]
    public void The_retries2_budget_matches_tcp_model_timeout()
    {
        TimeSpan min = TimeSpan.FromMilliseconds(200), max = TimeSpan.FromSeconds(120);
        Assert.Equal(924.6, TcpConnection.ModelTimeout(15, min, max).TotalSeconds, 6);
        Assert.Equal(1.4, TcpConnection.ModelTimeout(2, min, max).TotalSeconds, 6);       // 0.2 + 0.4 + 0.8
        Assert.Equal(127, TcpConnection.ModelTimeout(6, TimeSpan.FromSeconds(1), max).TotalSeconds, 6);
    }

    [Fact]
    public void A_zero_window_is_probed_with_backoff_and_reopened_by_a_window_update()
    {
        var net = new TwoHosts();
        var (client, server) = Connected.Open(net, serverOptions: new TcpSocketOptions { ReceiveBufferSize = 4096 });
        net.RunUntil(1);
        byte[] data = RandomBytes(64 * 1024, 5);
        int written = client.Write(data);
        net.RunUntil(30);   // the server application does not read: its window closes

        var probes = net.Log.From(TwoHosts.ClientIp).Where(s => s.Comment.StartsWith("zero-window probe", StringComparison.Ordinal)).ToList();
        Assert.True(probes.Count >= 4, net.Log.Dump());
        double[] gaps = probes.Zip(probes.Skip(1), (a, b) => b.At.TotalSeconds - a.At.TotalSeconds).ToArray();
        for (int i = 1; i < gaps.Length; i++) Assert.Equal(Math.Min(gaps[i - 1] * 2, 120), gaps[i], 2);
        Assert.All(probes, p => Assert.Equal(0, p.Length));
        Assert.Contains(net.Log.From(TwoHosts.ServerIp), s => s.Header.Window == 0);

        // The application reads: a window update follows and the data flows again.
        var received = new MemoryStream();
        var chunk = new byte[8192];
        for (int i = 0; i < 2000 && received.Length < written; i++)
        {
            int n;
            while ((n = server.Read(chunk)) > 0) received.Write(chunk, 0, n);
            net.Loop.RunFor(TimeSpan.FromMilliseconds(10));
            if (written < data.Length) written += client.Write(data.AsSpan(written));
        }
        Assert.Equal(data.Length, (int)received.Length);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
    }
}
