using System.Collections.Concurrent;
using System.Diagnostics;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Time;

namespace TcpLab.Integration.Tests.Support;

/// <summary>A frame as a handler received it, copied out of its (released) buffer.</summary>
internal sealed record ReceivedFrame(byte[] Bytes, OffloadInfo Offload, Instant Timestamp, bool OnLoopThread)
{
    public override string ToString() =>
        $"{Bytes.Length} bytes, type 0x{TestFrames.EtherType(Bytes):x4}, " +
        $"{TestNetwork.MacText(TestFrames.Source(Bytes))} > {TestNetwork.MacText(TestFrames.Destination(Bytes))}";
}

/// <summary>
/// Collects what a link delivers, so a test thread can wait for a particular frame. Waits fail
/// early with the loop's exception if the loop died.
/// </summary>
internal sealed class FrameCollector(RealTimeEventLoop loop) : IFrameHandler
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10); // a hang guard, not a timing assertion

    private readonly BlockingCollection<ReceivedFrame> _arrived = new();

    /// <summary>Every frame <see cref="WaitFor"/> has taken so far, in arrival order.</summary>
    public List<ReceivedFrame> Seen { get; } = [];

    public void OnFrame(PacketBuffer frame)
    {
        _arrived.Add(new ReceivedFrame(frame.Span.ToArray(), frame.Offload, frame.Timestamp, loop.IsOnLoop));
        frame.Release();
    }

    public ReceivedFrame WaitFor(string what, Func<ReceivedFrame, bool> match)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < DefaultTimeout)
        {
            if (loop.Completion.IsFaulted) throw new InvalidOperationException("the event loop died", loop.Completion.Exception);
            if (!_arrived.TryTake(out ReceivedFrame? frame, TimeSpan.FromMilliseconds(100))) continue;
            Seen.Add(frame);
            if (match(frame)) return frame;
        }
        Assert.Fail($"no {what} within {DefaultTimeout.TotalSeconds} s; saw {Seen.Count} other frames:\n  {string.Join("\n  ", Seen)}");
        throw new UnreachableException();
    }

    /// <summary>Waits until <paramref name="condition"/> holds (read from the test thread), failing after the hang guard.</summary>
    public static void WaitUntil(string what, Func<bool> condition)
    {
        if (!SpinWait.SpinUntil(condition, DefaultTimeout)) Assert.Fail($"timed out waiting for {what}");
    }
}
