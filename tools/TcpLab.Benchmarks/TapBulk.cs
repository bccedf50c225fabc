using System.Diagnostics;
using System.Globalization;
using TcpLab.Lab.Namespaces;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Wire;

namespace TcpLab.Benchmarks;

/// <summary>
/// Bulk goodput between the managed stack behind a TAP and the Linux kernel, each direction:
/// `bulk-tap [--n N] [--seconds S] [--warmup S] [--offload] [--tapbench PATH] [--only kernel-to-managed|managed-to-kernel]` (root). The managed side runs a
/// <see cref="BulkSink"/> or <see cref="BulkSource"/> on its loop; the kernel side is
/// tools/tapbench's sock-send / sock-sink in the namespace, pinned to CPU 1 with taskset. Run
/// the benchmark itself under `taskset -c 0` so the managed loop has CPU 0.
/// <para>
/// `--warmup S` (default 3) first runs each measured direction for S seconds and discards the
/// result, so the measurement sees the stack's steady state rather than the JIT compiling it
/// (tiered compilation takes a few seconds to settle, and took 7 % of the CPU 3 s in).
/// </para>
/// </summary>
public static class TapBulk
{
    public static void Run(string[] args)
    {
        int n = (int)Option(args, "--n", 142);
        double seconds = Option(args, "--seconds", 5);
        string tapbench = args.SkipWhile(a => a != "--tapbench").Skip(1).FirstOrDefault()
                          ?? Path.Combine(AppContext.BaseDirectory, "../../../../tapbench/tapbench");
        using var lab = TapAttachment.Create(new TapAttachmentOptions
        {
            ManagedAddress = Ipv4Cidr.Parse($"10.77.{n}.2/24"),
            KernelAddress = Ipv4Cidr.Parse($"10.77.{n}.1/24"),
            Seed = (ulong)n,
            Offload = args.Contains("--offload"),
        });
        double warmup = Option(args, "--warmup", 3);
        string? only = args.SkipWhile(a => a != "--only").Skip(1).FirstOrDefault();
        BulkSink? sink = null;   // the latest connection's
        lab.Loop.Invoke(() =>
        {
            ListenSocket listener = lab.Stack.Tcp.Listen(Ipv4Address.Any, 5001, 16);
            listener.Acceptable += l => { if (l.TryAccept() is { } c) sink = new BulkSink(c); };
        });
        Func<BulkSink?> latestSink = () => lab.Loop.Invoke(() => sink);
        if (warmup > 0)
        {
            if (only is null or "kernel-to-managed") KernelToManaged(lab, latestSink, tapbench, n, warmup);
            if (only is null or "managed-to-kernel") ManagedToKernel(lab, tapbench, n, warmup);
        }
        if (only is null or "kernel-to-managed") Console.WriteLine($"kernel->managed {KernelToManaged(lab, latestSink, tapbench, n, seconds)}");
        if (only is null or "managed-to-kernel") Console.WriteLine($"managed->kernel {ManagedToKernel(lab, tapbench, n, seconds)}");
    }

    private static string KernelToManaged(TapAttachment lab, Func<BulkSink?> latestSink, string tapbench, int n, double seconds)
    {
        Process sender = lab.Namespace.StartProcess("taskset", "-c", "1", tapbench, "sock-send", $"10.77.{n}.2", "5001",
                                                    seconds.ToString(CultureInfo.InvariantCulture));
        string output = sender.StandardOutput.ReadToEnd();
        sender.WaitForExit();
        BulkSink? sink = latestSink();
        var (bytes, segmentsIn, segmentsOut, delayedAcks) = lab.Loop.Invoke(() =>
            (sink?.BytesRead ?? 0, sink?.Connection.SegmentsIn ?? 0, sink?.Connection.SegmentsOut ?? 0,
             lab.Stack.Counters[TcpLab.Stack.Diagnostics.Mib.TcpExtDelayedACKs]));
        return $"{output.Trim()} (managed sink read {bytes} bytes in {segmentsIn} segments, sent {segmentsOut} segments, {delayedAcks} of them delayed ACKs)";
    }

    private static string ManagedToKernel(TapAttachment lab, string tapbench, int n, double seconds)
    {
        Process receiver = lab.Namespace.StartProcess("taskset", "-c", "1", tapbench, "sock-sink", "5001");
        Thread.Sleep(300);
        var block = new byte[1 << 20];
        new Random(1).NextBytes(block);
        BulkSource source = lab.Loop.Invoke(() => new BulkSource(lab.Stack.Tcp.Connect(Ipv4Address.Parse($"10.77.{n}.1"), 5001), block, long.MaxValue));
        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        var (segments, superframes, frames) = lab.Loop.Invoke(() =>
        {
            source.Connection.Abort();   // the sink's read ends; it reports what it got
            return (source.Connection.SegmentsOut, source.Connection.SuperframesOut, lab.Device.FramesOut);
        });
        string output = receiver.StandardOutput.ReadToEnd();
        receiver.WaitForExit();
        return $"{output.Trim()} (managed sent {segments} segments in {frames} frames on the TAP, {superframes} of them TSO superframes)";
    }

    private static double Option(string[] args, string name, double fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
