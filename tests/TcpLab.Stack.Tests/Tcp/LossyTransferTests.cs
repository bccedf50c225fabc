using System.Globalization;
using System.Security.Cryptography;
using FsCheck;
using FsCheck.Fluent;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Tests.Wire;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// Bulk transfers across a lossy simulated path (5 ms each way, 100 Mbit/s), the faults drawn
/// from a seed: every byte arrives, in order, whatever the loss rate, reordering and duplication,
/// with SACK or without, with CUBIC or Reno. The data is hashed on both ends as it goes.
/// </summary>
public class LossyTransferTests
{
    private static readonly WireOptions Path = WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(5), RateBitsPerSecond = 100_000_000 };

    /// <param name="Tso">The sender's link takes TSO superframes and splits them before the faults (<see cref="SoftwareGsoLink"/>).</param>
    public sealed record Case(ulong Seed, double Loss, double Reorder, double Duplicate, bool Sack, string Congestion, int Bytes, bool Tso = false)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"seed {Seed}, loss {Loss:P0}, reorder {Reorder:P0}, duplicate {Duplicate:P1}, sack {Sack}, {Congestion}, {Bytes} bytes{(Tso ? ", TSO" : "")}");
    }

    /// <summary>Outcome of one transfer, for the assertions.</summary>
    public sealed record Outcome(byte[] SentHash, byte[] ReceivedHash, long Received, TimeSpan Took, TwoHosts Net, TcpConnection Sender, TcpConnection Receiver);

    /// <summary>
    /// Sends <see cref="Case.Bytes"/> of seeded data from client to server through the faults (on
    /// the client's link, both directions), closes, and reads to the end.
    /// </summary>
    public static Outcome Run(Case c)
    {
        var faults = new List<FaultRule> { FaultRule.Parse(Invariant($"drop proto=tcp p={c.Loss}")) };
        if (c.Reorder > 0) faults.Add(FaultRule.Parse(Invariant($"reorder 1 proto=tcp p={c.Reorder}")));
        if (c.Duplicate > 0) faults.Add(FaultRule.Parse(Invariant($"duplicate 1 proto=tcp p={c.Duplicate}")));
        var net = new TwoHosts(c.Seed, wire: Path, faults: faults, clientLink: c.Tso ? link => new SoftwareGsoLink(link, keepCopies: false) : null,
                               client: s => { s.TcpSack = c.Sack; s.TcpCongestionControl = c.Congestion; },
                               server: s => s.TcpSack = c.Sack);
        var (sender, receiver) = Connected.Open(net);
        Instant start = net.Loop.Now;
        using var sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var receivedHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var source = new DeterministicRandom(c.Seed ^ 0x5eed);
        var chunk = new byte[64 * 1024];
        var readBuffer = new byte[64 * 1024];
        int pending = 0, pendingOffset = 0;
        long written = 0, received = 0;
        bool closed = false;
        Instant deadline = start + TimeSpan.FromHours(2);
        while (net.Loop.Now < deadline && !(receiver.EndOfStream && receiver.ReadableBytes == 0))
        {
            if (pending == 0 && written < c.Bytes)
            {
                pending = (int)Math.Min(chunk.Length, c.Bytes - written);
                pendingOffset = 0;
                source.NextBytes(chunk.AsSpan(0, pending));
                sentHash.AppendData(chunk, 0, pending);
            }
            if (pending > 0)
            {
                int n = sender.Write(chunk.AsSpan(pendingOffset, pending));
                pendingOffset += n;
                pending -= n;
                written += n;
            }
            if (written == c.Bytes && pending == 0 && !closed)
            {
                sender.ShutdownSend();
                closed = true;
            }
            net.Loop.RunFor(TimeSpan.FromMilliseconds(1));
            int r;
            while ((r = receiver.Read(readBuffer)) > 0)
            {
                receivedHash.AppendData(readBuffer, 0, r);
                received += r;
            }
        }
        return new Outcome(sentHash.GetHashAndReset(), receivedHash.GetHashAndReset(), received, net.Loop.Now - start, net, sender, receiver);
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static void AssertDelivered(Case c, Outcome o)
    {
        Assert.True(o.Received == c.Bytes, $"{c}: {o.Received} of {c.Bytes} bytes after {o.Took.TotalSeconds:F1} s; sender {o.Sender} {o.Sender.CongestionState}");
        Assert.Equal(o.SentHash, o.ReceivedHash);
        Assert.True(o.Receiver.EndOfStream);
    }

    [Fact]
    public void Any_seed_loss_rate_reordering_and_duplication_delivers_every_byte_in_order()
    {
        Gen<Case> cases =
            from seed in Gen.Choose(1, int.MaxValue)
            from loss in Gen.Elements(0.01, 0.05, 0.10)
            from reorder in Gen.Elements(0.0, 0.0, 0.02)
            from duplicate in Gen.Elements(0.0, 0.0, 0.005)
            from sack in Gen.Elements(true, true, false)
            from congestion in Gen.Elements("cubic", "reno")
            from bytes in Gen.Choose(100_000, 1_000_000)
            select new Case((ulong)seed, loss, reorder, duplicate, sack, congestion, bytes);

        WireFrames.Holds(cases, c => AssertDelivered(c, Run(c)), c => c.ToString(), tests: 200);
    }

    [Fact]
    public void With_TSO_any_seed_and_loss_rate_delivers_every_byte_in_order()
    {
        // The faults sit behind the splitter: they drop, reorder and duplicate wire segments of superframes.
        Gen<Case> cases =
            from seed in Gen.Choose(1, int.MaxValue)
            from loss in Gen.Elements(0.01, 0.05, 0.10)
            from reorder in Gen.Elements(0.0, 0.02)
            from duplicate in Gen.Elements(0.0, 0.005)
            from sack in Gen.Elements(true, true, false)
            from bytes in Gen.Choose(200_000, 1_000_000)
            select new Case((ulong)seed, loss, reorder, duplicate, sack, "cubic", bytes, Tso: true);

        WireFrames.Holds(cases, c =>
        {
            Outcome o = Run(c);
            AssertDelivered(c, o);
            Assert.True(o.Sender.SuperframesOut > 0, $"{c}: no superframes");
        }, c => c.ToString(), tests: 40);
    }

    /// <summary>100 MB at each loss rate, SACK and CUBIC (the defaults); see docs/performance.md for how long they take.</summary>
    [Theory]
    [InlineData(0.01)]
    [InlineData(0.05)]
    [InlineData(0.10)]
    public void A_hundred_megabytes_arrive_intact_at_each_loss_rate(double loss)
    {
        var c = new Case(Seed: 100, loss, Reorder: 0, Duplicate: 0, Sack: true, Congestion: "cubic", Bytes: 100 * 1024 * 1024);
        Outcome o = Run(c);

        AssertDelivered(c, o);
        Counters sender = o.Net.Client.Counters;
        // Most losses were repaired by fast retransmits (SACK, RACK), not after timeouts.
        Assert.True(sender[Mib.TcpExtTCPFastRetrans] > sender[Mib.TcpRetransSegs] / 2,
                    $"{sender[Mib.TcpExtTCPFastRetrans]} fast retransmits of {sender[Mib.TcpRetransSegs]} retransmissions");
    }
}
