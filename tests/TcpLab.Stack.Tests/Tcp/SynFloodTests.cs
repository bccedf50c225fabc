using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// A SYN flood from spoofed sources: 100,000 SYNs at 10,000 per second, from 240 addresses on
/// the server's subnet that a third host claims in ARP (so SYN-ACKs leave and are never
/// answered). The server listens with backlog 128.
/// </summary>
public class SynFloodTests
{
    private const int FloodSyns = 100_000;
    private const double FloodRate = 10_000;   // SYNs per second
    private const int Backlog = 128;

    private sealed record FloodResult(TcpConnection Legitimate, ListenSocket Listener, int MostFlows, int MostTimers, long SynAcksToSpoofed);

    private static FloodResult Flood(int syncookies)
    {
        var net = new TwoHosts(client: s => s.TcpSynRetries = 2, server: s => s.TcpSyncookies = syncookies);
        var injector = new Injector(net);
        injector.StandInFor(a => (a.Value & 0xFF) is >= 10 and < 250);
        ListenSocket listener = net.Server.Tcp.Listen(Ipv4Address.Any, 80, Backlog);
        TcpConnection? legitimate = null;
        int mostFlows = 0, mostTimers = 0;
        for (int i = 0; i < FloodSyns; i++)
        {
            net.RunUntil(i / FloodRate);
            if (i == (int)FloodRate) legitimate = net.Client.Tcp.Connect(TwoHosts.ServerIp, 80);   // at 1 s
            var source = new Ipv4Address(TwoHosts.ServerIp.Value & 0xFFFFFF00 | (uint)(10 + i % 240));
            injector.Send(source, TwoHosts.ServerIp, new TcpHeader
            {
                SourcePort = (ushort)(1024 + i / 240 % 60000), DestinationPort = 80, SequenceNumber = (uint)i * 7919,
                Flags = TcpFlags.Syn, Window = 64240,
            });
            if (i % 1000 == 0)
            {
                mostFlows = Math.Max(mostFlows, net.Server.Tcp.Flows.Count());
                mostTimers = Math.Max(mostTimers, net.Loop.Timers.Count);
            }
        }
        net.RunUntil(FloodSyns / FloodRate + 1);
        return new FloodResult(legitimate!, listener, mostFlows, mostTimers, injector.FramesReceived);
    }

    [Fact]
    public void With_syncookies_the_server_keeps_at_most_backlog_plus_one_requests_and_a_legitimate_client_connects()
    {
        FloodResult result = Flood(syncookies: 1);

        Assert.Equal(TcpState.Established, result.Legitimate.State);
        Assert.Equal(1, result.Listener.AcceptQueueLength);
        Assert.InRange(result.MostFlows, Backlog + 1, Backlog + 2);    // the requests, and the legitimate connection
        Assert.InRange(result.MostTimers, 1, 4 * (Backlog + 2));         // a request's timer, the connections' few
        NetworkStack server = result.Listener.Tcp.Stack;
        Assert.True(server.Counters[Mib.TcpExtSyncookiesSent] > FloodSyns * 9 / 10, $"{server.Counters[Mib.TcpExtSyncookiesSent]} cookies");
        Assert.True(result.SynAcksToSpoofed >= FloodSyns, $"{result.SynAcksToSpoofed} SYN-ACKs reached the spoofed sources");
        Assert.Equal(0, server.Counters[Mib.TcpExtTCPReqQFullDrop]);
    }

    [Fact]
    public void Without_syncookies_the_flood_fills_the_SYN_queue_and_starves_a_legitimate_client()
    {
        FloodResult result = Flood(syncookies: 0);

        // tcp_syn_retries=2: SYNs at 1, 2, 3, 4, 5 and 6 s, each dropped; connect() fails at 8 s.
        Assert.Equal(Errno.ETIMEDOUT, result.Legitimate.Error);
        Assert.InRange(result.MostFlows, Backlog + 1, Backlog + 2);
        NetworkStack server = result.Listener.Tcp.Stack;
        Assert.True(server.Counters[Mib.TcpExtTCPReqQFullDrop] > FloodSyns * 9 / 10);
        Assert.Equal(server.Counters[Mib.TcpExtTCPReqQFullDrop], server.Counters[Mib.TcpExtListenDrops]);
        Assert.Equal(0, server.Counters[Mib.TcpExtSyncookiesSent]);
    }
}
