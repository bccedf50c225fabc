using System.Buffers.Binary;
using System.Diagnostics;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Stack.Link.Faults;

/// <summary>
/// Scripted faults on a link, where netem would sit: wraps an inner <see cref="ILink"/>, and every
/// frame going down (<see cref="Transmit"/>, egress) or up (<see cref="OnFrame"/>, ingress) meets
/// the <see cref="FaultRule"/>s in order. The first rule that matches and selects the frame
/// decides its fate (drop, delay, duplicate, reorder, corrupt); a frame no rule takes goes on
/// unchanged.
/// <para>
/// Each rule draws from its own random stream, derived from the stage's
/// <see cref="DeterministicRandom"/> and the rule's text, so the same seed takes the same frames,
/// and adding a rule does not change another rule's draws.
/// </para>
/// <para>
/// With a capture sink, the stage records every frame when it sees it, before its fate, with its
/// <see cref="PacketBuffer.Cause"/> and the verdict as the packet comment: a capture that shows lost
/// packets the way tcpdump on the sender shows them, with why each was lost.
/// </para>
/// <para>
/// Ownership: every frame is passed on or released exactly once. Frames held back (delays and
/// reorders, both directions) wait in one heap ordered by release time, under one timer; after
/// warm-up nothing is allocated per frame unless a capture sink words comments.
/// </para>
/// </summary>
public sealed class FaultStage : ILink, IFrameHandler
{
    private readonly EventLoop _loop;
    private readonly ILink _inner;
    private readonly ActiveRule[] _rules;
    private readonly ICaptureSink? _capture;
    private readonly int _captureInterface;
    private readonly HeldFrameQueue _held = new();
    private readonly Timer _releaseTimer;
    private readonly DirectionState[] _directions = new DirectionState[2];
    private IFrameHandler? _handler;
    private long _nextHoldOrder;

    /// <summary>Checks the rules, derives their random streams and attaches to <paramref name="inner"/>.</summary>
    /// <param name="random">Source of every rule's stream; the stage never draws from it directly.</param>
    /// <param name="capture">Where to record every frame with its verdict; none if null.</param>
    /// <param name="interfaceName">Name in the capture; the inner link's name if null.</param>
    /// <exception cref="FaultRuleFormatException">A rule is not valid (see <see cref="FaultRule.Validate"/>).</exception>
    public FaultStage(EventLoop loop, ILink inner, IEnumerable<FaultRule> rules, DeterministicRandom random,
                      ICaptureSink? capture = null, string? interfaceName = null)
    {
        _loop = loop;
        _inner = inner;
        var active = new List<ActiveRule>();
        var timesSeen = new Dictionary<string, int>();
        foreach (FaultRule rule in rules)
        {
            rule.Validate();
            // Keyed by the rule's text, not its position, so inserting a rule leaves the others' draws
            // alone; a second identical rule gets a stream of its own.
            string text = rule.ToString();
            int seen = timesSeen[text] = timesSeen.GetValueOrDefault(text) + 1;
            DeterministicRandom stream = random.Derive(seen == 1 ? $"fault:{text}" : $"fault:{text}#{seen}");
            active.Add(new ActiveRule(rule, active.Count + 1, stream));
        }
        _rules = [.. active];
        RuleCounters = Array.ConvertAll(_rules, rule => rule.Counters);
        _releaseTimer = loop.CreateTimer(ReleaseDue);
        if (capture is not null)
        {
            _capture = capture;
            _captureInterface = capture.AddInterface(interfaceName ?? inner.Info.Name);
        }
        // Rules count and match wire segments (nth, seq, len), and a capture shows them: with either,
        // TCP must not send TSO superframes through this stage. Without, it is transparent.
        Info = _rules.Length > 0 || _capture is not null ? inner.Info.WithoutTcpSegmentation() : inner.Info;
        inner.Attach(this);
    }

    public LinkInfo Info { get; }

    /// <summary>What happened to frames, by action.</summary>
    public FaultStageCounters Counters { get; } = new();

    /// <summary>Matches and frames taken, per rule, in rule order.</summary>
    public IReadOnlyList<FaultRuleCounters> RuleCounters { get; }

    /// <summary>Frames delayed or held for reordering that have not gone on yet.</summary>
    public int HeldFrames => _held.Count;

    public void Attach(IFrameHandler handler) => _handler = handler;

    public void Transmit(PacketBuffer frame) => Process(frame, FaultDirection.Egress);

    public void OnFrame(PacketBuffer frame) => Process(frame, FaultDirection.Ingress);

    private void Process(PacketBuffer frame, FaultDirection direction)
    {
        Verdict verdict = Decide(frame, direction);
        if (_capture is not null) Record(frame, direction, verdict);
        if (verdict.Rule is not { } rule)
        {
            Counters.Passed++;
            PassOn(frame, direction);
            return;
        }
        switch (rule.Rule.Action)
        {
            case DropAction:
                Counters.Dropped++;
                frame.Release();
                break;
            case DelayAction delay:
                Counters.Delayed++;
                Hold(frame, direction, _loop.Now + delay.Delay, HeldFrame.NotByPasses);
                break;
            case ReorderAction reorder:
            {
                Counters.Reordered++;
                ref DirectionState state = ref State(direction);
                state.ReorderHolds++;
                Hold(frame, direction, _loop.Now + reorder.Timeout, state.Passes + reorder.Frames);
                break;
            }
            case DuplicateAction duplicate:
                Counters.Duplicated++;
                PassOnWithCopies(frame, direction, duplicate.Copies, new PacketCause(CauseCode.FaultDuplicate, rule.Number));
                break;
            case CorruptAction:
                Counters.Corrupted++;
                Corrupt(frame, verdict.CorruptOffset, new PacketCause(CauseCode.FaultCorrupt, rule.Number));
                PassOn(frame, direction);
                break;
        }
    }

    /// <summary>The first rule that matches and selects the frame, with its match number; none when the frame passes.</summary>
    private Verdict Decide(PacketBuffer frame, FaultDirection direction)
    {
        if (_rules.Length == 0) return default;
        FrameSummary summary = FrameSummary.Read(frame.Span);
        Instant now = _loop.Now;
        foreach (ActiveRule rule in _rules)
        {
            if (!rule.Rule.Matches(summary, direction) || !rule.TrySelect(now, out long match)) continue;
            int corruptOffset = rule.Rule.Action is CorruptAction corrupt
                ? corrupt.Offset ?? rule.Random.Next(summary.CorruptibleStart, summary.CorruptibleEnd)
                : 0;
            return new Verdict(rule, match, corruptOffset);
        }
        return default;
    }

    /// <summary>Sends a frame on, then counts it as gone through, which may complete reorder holds behind it.</summary>
    private void PassOn(PacketBuffer frame, FaultDirection direction)
    {
        Deliver(frame, direction);
        CountPass(direction);
    }

    /// <summary>
    /// The frame, then <paramref name="copies"/> copies marked with <paramref name="mark"/>. The
    /// copies are cloned from the buffer we own, so that buffer goes last, marked, and the first
    /// frame out is a clone keeping the original cause.
    /// </summary>
    private void PassOnWithCopies(PacketBuffer frame, FaultDirection direction, int copies, PacketCause mark)
    {
        for (int i = 0; i < copies; i++)
        {
            PacketBuffer copy = frame.Clone();
            if (i > 0) copy.Cause = mark;
            Deliver(copy, direction);
        }
        frame.Cause = mark;
        PassOn(frame, direction);
    }

    private void Deliver(PacketBuffer frame, FaultDirection direction)
    {
        if (direction == FaultDirection.Egress) _inner.Transmit(frame);
        else if (_handler is null) frame.Release();
        else _handler.OnFrame(frame);
    }

    private void CountPass(FaultDirection direction)
    {
        ref DirectionState state = ref State(direction);
        state.Passes++;
        if (state.ReorderHolds == 0) return;
        _held.ExpeditePassed(direction, state.Passes, _loop.Now);
        ReleaseDue();
    }

    private void Hold(PacketBuffer frame, FaultDirection direction, Instant releaseAt, long releaseAtPass)
    {
        _held.Push(new HeldFrame
        {
            ReleaseAt = releaseAt,
            Order = _nextHoldOrder++,
            Direction = direction,
            ReleaseAtPass = releaseAtPass,
            Frame = frame,
        });
        ArmReleaseTimer();
    }

    /// <summary>
    /// Sends on every held frame that is due, in release order: run by the timer, and by a pass
    /// that completes a reorder hold. A frame is taken off the heap before it is sent, so whatever
    /// the receiver does in turn (transmit, even into this stage) finds the heap consistent.
    /// </summary>
    private void ReleaseDue()
    {
        Instant now = _loop.Now;
        while (_held.TryPopDue(now, out HeldFrame held))
        {
            if (held.IsReorderHold) State(held.Direction).ReorderHolds--;
            // As far as the stack can tell, a frame held on its way in arrives now.
            if (held.Direction == FaultDirection.Ingress) held.Frame.Timestamp = now;
            Deliver(held.Frame, held.Direction);
        }
        ArmReleaseTimer();
    }

    private void ArmReleaseTimer()
    {
        if (_held.Count == 0) _releaseTimer.Cancel();
        else _releaseTimer.Arm(_held.NextReleaseAt);
    }

    private static void Corrupt(PacketBuffer frame, int offset, PacketCause mark)
    {
        // A checksum the link is still to fill in would be computed over the flipped byte and
        // hide it: finish it first, as skb_checksum_help() does for a device that cannot.
        if (frame.Offload.NeedsChecksum) FinishChecksum(frame);
        // Nor may the stack trust a checksum that was verified before the flip.
        frame.Offload.ChecksumVerified = false;
        frame.Span[EthernetFrame.HeaderLength + offset] ^= 0xFF;
        frame.Cause = mark;
    }

    /// <summary>Fills in a partial checksum (the field holds the pseudo-header sum; csum_start and csum_offset say where).</summary>
    private static void FinishChecksum(PacketBuffer frame)
    {
        Span<byte> bytes = frame.Span;
        int start = frame.Offload.ChecksumStart;
        ushort checksum = InternetChecksum.Compute(bytes[start..]);
        BinaryPrimitives.WriteUInt16BigEndian(bytes[(start + frame.Offload.ChecksumOffset)..], checksum);
        frame.Offload.NeedsChecksum = false;
    }

    private void Record(PacketBuffer frame, FaultDirection direction, in Verdict verdict)
    {
        // Words are built only here, for a capture; frames that pass with no cause cost no string.
        string? cause = frame.Cause.IsNone ? null : frame.Cause.ToString();
        string? comment = verdict.Rule is not { } rule ? cause
            : cause is null ? rule.Describe(verdict)
            : $"{cause} | {rule.Describe(verdict)}";
        PacketDirection captureDirection = direction == FaultDirection.Egress ? PacketDirection.Outbound : PacketDirection.Inbound;
        _capture!.Record(_captureInterface, CaptureTime.UnixNanoseconds(_loop, _loop.Now), captureDirection, frame.Span, comment);
    }

    private ref DirectionState State(FaultDirection direction) =>
        ref _directions[direction == FaultDirection.Egress ? 0 : 1];

    /// <summary>One direction's frames that went straight through (what reorder holds count), and its reorder holds.</summary>
    private struct DirectionState
    {
        public long Passes;
        /// <summary>Reorder holds waiting, so that a pass looks through the held frames only when one waits.</summary>
        public int ReorderHolds;
    }

    /// <param name="Rule">The rule that took the frame; null when the frame passes.</param>
    /// <param name="Match">The frame's match number under that rule.</param>
    /// <param name="CorruptOffset">For a corruption: which byte after the Ethernet header to invert.</param>
    private readonly record struct Verdict(ActiveRule? Rule, long Match, int CorruptOffset);

    /// <summary>A rule as one stage runs it: its position, random stream and counts.</summary>
    private sealed class ActiveRule(FaultRule rule, int number, DeterministicRandom random)
    {
        private readonly string _label = rule.Label;

        public FaultRule Rule { get; } = rule;

        /// <summary>1-based position in the stage, as messages and the duplicate and corrupt causes name it.</summary>
        public int Number { get; } = number;

        public DeterministicRandom Random { get; } = random;

        public FaultRuleCounters Counters { get; } = new(rule, number);

        /// <summary>The selection, for a frame that matched: active, then nth or every, then the draw.</summary>
        public bool TrySelect(Instant now, out long match)
        {
            match = 0;
            if (Rule.After is { } after && now < after) return false;
            if (Rule.Until is { } until && now >= until) return false;
            if (Rule.Count is { } count && Counters.Affected >= count) return false;
            match = ++Counters.Matched;
            if (Rule.Nth is { } nth && match != nth) return false;
            if (Rule.Every is { } every && match % every != 0) return false;
            if (Rule.Probability < 1 && Random.NextDouble() >= Rule.Probability) return false;
            Counters.Affected++;
            return true;
        }

        /// <summary>The verdict as the capture comment words it.</summary>
        public string Describe(in Verdict verdict)
        {
            string what = Rule.Action switch
            {
                DropAction => "dropped",
                DelayAction delay => $"delayed {DurationText.Format(delay.Delay)}",
                DuplicateAction { Copies: 1 } => "duplicated, 1 copy follows",
                DuplicateAction duplicate => $"duplicated, {duplicate.Copies} copies follow",
                ReorderAction reorder =>
                    $"held until {reorder.Frames} later frame{(reorder.Frames == 1 ? "" : "s")} pass, at most {DurationText.Format(reorder.Timeout)}",
                CorruptAction => $"corrupted: byte {verdict.CorruptOffset} after the Ethernet header inverted",
                _ => throw new UnreachableException(Rule.Action.GetType().Name),
            };
            return $"{what} by rule {Number} '{_label}' (match {verdict.Match})";
        }
    }
}

/// <summary>Frames a <see cref="FaultStage"/> handled, by what it did to them.</summary>
public sealed class FaultStageCounters
{
    /// <summary>Frames no rule took.</summary>
    public long Passed { get; internal set; }

    public long Dropped { get; internal set; }

    public long Delayed { get; internal set; }

    /// <summary>Frames duplicated (not the copies made).</summary>
    public long Duplicated { get; internal set; }

    public long Reordered { get; internal set; }

    public long Corrupted { get; internal set; }

    public override string ToString() =>
        $"passed {Passed}, dropped {Dropped}, delayed {Delayed}, duplicated {Duplicated}, reordered {Reordered}, corrupted {Corrupted}";
}

/// <summary>How one rule of a <see cref="FaultStage"/> fared.</summary>
public sealed class FaultRuleCounters
{
    internal FaultRuleCounters(FaultRule rule, int number)
    {
        Rule = rule;
        Number = number;
    }

    public FaultRule Rule { get; }

    /// <summary>1-based position of the rule in its stage.</summary>
    public int Number { get; }

    /// <summary>Frames that met the rule's conditions while it was active: the count nth and every refer to.</summary>
    public long Matched { get; internal set; }

    /// <summary>Frames the rule took and acted on.</summary>
    public long Affected { get; internal set; }

    public override string ToString() => $"rule {Number} '{Rule.Label}': matched {Matched}, affected {Affected}";
}
