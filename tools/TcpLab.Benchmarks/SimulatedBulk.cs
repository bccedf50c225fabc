using System.Diagnostics;
using TcpLab.Stack;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Benchmarks;

/// <summary>
/// Bulk goodput between two managed stacks on the simulated wire, no loss, measured in wall-clock
/// time on one thread (both stacks, the wire and both applications share the simulated loop):
/// `bulk-sim [--seconds S] [--runs N] [--mss M]`.
/// </summary>
public static class SimulatedBulk
{
    public static void Run(string[] args)
    {
        double seconds = Option(args, "--seconds", 3.0);
        int runs = (int)Option(args, "--runs", 5);
        int mtu = (int)Option(args, "--mtu", 1500);
        bool timestamps = Option(args, "--timestamps", 1) != 0;
        Console.WriteLine($"bulk-sim: {runs} runs of {seconds} s, MTU {mtu}, timestamps {(timestamps ? "on" : "off")}");
        using AllocationSampler? sampler = args.Contains("--alloc-types") ? new AllocationSampler() : null;
        var goodputs = new List<double>();
        for (int run = 0; run < runs; run++)
        {
            var result = Measure(TimeSpan.FromSeconds(seconds), mtu, timestamps);
            goodputs.Add(result.GoodputGbps);
            Console.WriteLine($"  run {run + 1}: {result.GoodputGbps:F2} Gbit/s goodput, {result.Segments} data segments of {result.Mss} B, "
                              + $"{result.NanosecondsPerSegment:F0} ns/segment, {result.AllocatedPerSegment:F3} B allocated/segment, virtual {result.VirtualSeconds:F3} s");
        }
        goodputs.Sort();
        Console.WriteLine($"median {goodputs[goodputs.Count / 2]:F2} Gbit/s");
        if (sampler is not null) Console.WriteLine("allocations by type:\n" + sampler.Report());
    }

    public sealed record Result(double GoodputGbps, long Segments, int Mss, double NanosecondsPerSegment, double AllocatedPerSegment, double VirtualSeconds);

    public static Result Measure(TimeSpan duration, int mtu, bool timestamps)
    {
        var loop = new SimulatedEventLoop();
        var random = new DeterministicRandom(1);
        // 10 us each way, no rate limit: the window, not the wire, paces the transfer.
        var wire = new SimulatedWire(loop, WireOptions.Default with { Delay = TimeSpan.FromMicroseconds(10), Mtu = mtu });
        var sysctls = new Sysctls { TcpTimestamps = timestamps ? 1 : 0 };
        var client = new NetworkStack(loop, "client", sysctls, random.Derive("client"));
        var server = new NetworkStack(loop, "server", sysctls, random.Derive("server"));
        var clientIp = Ipv4Address.Parse("10.0.0.1");
        var serverIp = Ipv4Address.Parse("10.0.0.2");
        client.AddInterface(wire.CreatePort("client"), MacAddress.Parse("02:00:00:00:00:01"), new Ipv4Cidr(clientIp, 24));
        server.AddInterface(wire.CreatePort("server"), MacAddress.Parse("02:00:00:00:00:02"), new Ipv4Cidr(serverIp, 24));

        ListenSocket listener = server.Tcp.Listen(Ipv4Address.Any, 5001, 16);
        TcpConnection sender = client.Tcp.Connect(serverIp, 5001);
        loop.RunFor(TimeSpan.FromSeconds(1), () => listener.AcceptQueueLength > 0);
        TcpConnection receiver = listener.TryAccept() ?? throw new InvalidOperationException("no connection");
        var block = new byte[1 << 20];
        random.NextBytes(block);
        var sink = new BulkSink(receiver);
        var source = new BulkSource(sender, block, long.MaxValue);

        // Warm up (slow start, buffer growth, JIT), then measure.
        loop.RunFor(TimeSpan.FromMilliseconds(200));
        long bytes0 = sink.BytesRead, segments0 = sender.SegmentsOut;
        Instant virtual0 = loop.Now;
        long allocated0 = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration) loop.RunFor(TimeSpan.FromMilliseconds(1));
        clock.Stop();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocated0;
        long bytes = sink.BytesRead - bytes0, segments = sender.SegmentsOut - segments0;
        double wall = clock.Elapsed.TotalSeconds;
        return new Result(bytes * 8 / wall / 1e9, segments, sender.SendMss, wall * 1e9 / segments,
                          (double)allocated / segments, (loop.Now - virtual0).TotalSeconds);
    }

    private static double Option(string[] args, string name, double fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : fallback;
    }
}
