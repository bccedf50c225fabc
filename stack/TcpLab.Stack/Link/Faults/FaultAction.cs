using TcpLab.Stack.Time;
namespace TcpLab.Stack.Link.Faults;

/// <summary>
/// What a <see cref="FaultRule"/> does to a frame it selects. Each action prints as the head of
/// the rule's text form ("drop", "delay 200ms", "reorder 2 timeout=50ms").
/// </summary>
public abstract record FaultAction
{
    private protected FaultAction() { }

    /// <summary>False when the action cannot apply to this frame (a corruption needs a byte to flip); the rule then does not match it.</summary>
    internal virtual bool AppliesTo(in FrameSummary frame) => true;

    /// <summary>What is wrong with the action's parameters, if anything.</summary>
    internal virtual RuleProblem? FindProblem() => null;

    public abstract override string ToString();
}

/// <summary>The frame is lost.</summary>
public sealed record DropAction : FaultAction
{
    public override string ToString() => "drop";
}

/// <summary>
/// The frame goes on after <see cref="Delay"/>, on the same path. Frames behind it are not held
/// back and may overtake it: a delay on one frame is a reordering.
/// </summary>
public sealed record DelayAction(TimeSpan Delay) : FaultAction
{
    internal override RuleProblem? FindProblem() =>
        Delay > TimeSpan.Zero ? null : new RuleProblem("action", "expected a positive delay, such as delay 200ms");

    public override string ToString() => $"delay {DurationText.Format(Delay)}";
}

/// <summary>
/// The frame goes on, followed at once by <see cref="Copies"/> copies of it, each marked with
/// <see cref="Diagnostics.CauseCode.FaultDuplicate"/>.
/// </summary>
public sealed record DuplicateAction(int Copies = 1) : FaultAction
{
    /// <summary>More copies than this is a typo, not an experiment.</summary>
    public const int MaxCopies = 100;

    internal override RuleProblem? FindProblem() =>
        Copies is >= 1 and <= MaxCopies ? null : new RuleProblem("action", $"expected 1 to {MaxCopies} copies, such as duplicate 1");

    public override string ToString() => $"duplicate {Copies}";
}

/// <summary>
/// The frame is held until <see cref="Frames"/> later frames in the same direction have gone
/// through, then sent right behind the last of them: with 1, two frames swap places.
/// <see cref="Timeout"/> bounds the wait for when traffic stops.
/// </summary>
public sealed record ReorderAction(int Frames = 1) : FaultAction
{
    /// <summary>
    /// Long enough for the next frame of a busy flow, and shorter than TCP's minimum RTO (200 ms),
    /// so a hold that times out does not itself cause a retransmission.
    /// </summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMilliseconds(100);

    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    internal override RuleProblem? FindProblem() =>
        Frames < 1 ? new RuleProblem("action", "expected at least 1 later frame, such as reorder 1")
        : Timeout <= TimeSpan.Zero ? new RuleProblem("timeout", "expected a positive timeout, such as timeout=100ms")
        : null;

    public override string ToString() =>
        Timeout == DefaultTimeout ? $"reorder {Frames}" : $"reorder {Frames} timeout={DurationText.Format(Timeout)}";
}

/// <summary>
/// One byte of the frame is inverted, at <see cref="Offset"/> bytes after the Ethernet header
/// (0 is the first byte of the IP header), or when no offset is given at a random place in the
/// IP payload, so the datagram passes IP and fails the TCP or ICMP checksum. The Ethernet header
/// is never touched, so the frame still reaches the stack. The frame is marked with
/// <see cref="Diagnostics.CauseCode.FaultCorrupt"/>.
/// </summary>
public sealed record CorruptAction(int? Offset = null) : FaultAction
{
    internal override bool AppliesTo(in FrameSummary frame) =>
        Offset is { } offset ? offset < frame.EthernetPayloadLength : frame.CorruptibleStart < frame.CorruptibleEnd;

    internal override RuleProblem? FindProblem() =>
        Offset is < 0 ? new RuleProblem("at", "expected a byte offset after the Ethernet header, 0 or more") : null;

    public override string ToString() => Offset is { } offset ? $"corrupt at={offset}" : "corrupt";
}

/// <summary>A rule's problem: the key it lies in ("action" for the action itself) and what was expected instead.</summary>
internal readonly record struct RuleProblem(string Key, string Expected);
