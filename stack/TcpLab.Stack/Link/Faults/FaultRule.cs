using System.Globalization;
using System.Text;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link.Faults;

/// <summary>
/// One line of a fault script: which frames (the match), which of those (the selection), and
/// what happens to them (the <see cref="Action"/>). Immutable; a <see cref="FaultStage"/> keeps
/// the counts and random stream of each rule it runs.
/// <para>
/// A frame is taken by a rule when, in this order: it matches every condition given
/// (<see cref="Direction"/>, <see cref="Protocol"/>, <see cref="From"/>, <see cref="To"/>,
/// <see cref="Flags"/>, <see cref="PayloadLength"/>, <see cref="Sequence"/>, and the action can
/// apply to it); the rule is active (the clock is in [<see cref="After"/>, <see cref="Until"/>)
/// and fewer than <see cref="Count"/> frames were taken); then the frame is counted as the
/// rule's next match, and that match number passes <see cref="Nth"/> or <see cref="Every"/>;
/// last, a draw against <see cref="Probability"/>. The draw comes last so that a rule draws only
/// for frames that could be taken, and the same frames give the same draws.
/// </para>
/// <para>
/// The text form (<see cref="Parse"/>, <see cref="ToString"/>) is the action and then
/// <c>key=value</c> conditions, e.g. <c>drop dir=egress tcp=S nth=2</c>;
/// <see cref="FromDictionary"/> takes the same keys from a YAML map, with the action under
/// "action". Both check the rule through <see cref="Validate"/>'s rules.
/// </para>
/// </summary>
/// <param name="Action">What happens to a frame the rule takes.</param>
public sealed record FaultRule(FaultAction Action)
{
    /// <summary>Keys of the text form, in the order <see cref="ToString"/> writes them.</summary>
    internal static readonly string[] Keys = ["dir", "proto", "from", "to", "tcp", "len", "seq", "nth", "every", "count", "after", "until", "p", "name"];

    /// <summary>Shown in capture comments and messages; the rule's text when null.</summary>
    public string? Name { get; init; }

    public FaultDirection Direction { get; init; } = FaultDirection.Both;

    /// <summary>Conditions on ports, flags, length or sequence imply TCP on their own.</summary>
    public FaultProtocol Protocol { get; init; }

    /// <summary>Source address and/or port.</summary>
    public FaultEndpoint? From { get; init; }

    /// <summary>Destination address and/or port.</summary>
    public FaultEndpoint? To { get; init; }

    /// <summary>TCP flags, tcpdump style (key "tcp").</summary>
    public TcpFlagMatch? Flags { get; init; }

    /// <summary>TCP data bytes in the frame (key "len"): 0 for none, "1.." for some.</summary>
    public NumberRange? PayloadLength { get; init; }

    /// <summary>The segment's absolute sequence number (key "seq"); a range may wrap.</summary>
    public NumberRange? Sequence { get; init; }

    /// <summary>Take only the n-th match (1-based).</summary>
    public int? Nth { get; init; }

    /// <summary>Take every k-th match: k, 2k, 3k...</summary>
    public int? Every { get; init; }

    /// <summary>Take at most this many frames, then stay inactive.</summary>
    public int? Count { get; init; }

    /// <summary>Active from this instant of the loop's clock on.</summary>
    public Instant? After { get; init; }

    /// <summary>Active only before this instant of the loop's clock.</summary>
    public Instant? Until { get; init; }

    /// <summary>Chance in [0, 1] that a frame which passed every other check is taken (key "p").</summary>
    public double Probability { get; init; } = 1;

    /// <summary>The rule's name, or its text when it has none: what messages call it.</summary>
    public string Label => Name ?? ToString();

    /// <summary>Reads the text form, e.g. <c>delay 200ms to=10.0.0.2:80 tcp=P.</c>.</summary>
    /// <exception cref="FaultRuleFormatException">Names the offending token and what was expected.</exception>
    public static FaultRule Parse(string text) => FaultRuleReader.ReadText(text);

    /// <summary>Reads a rule from a map of the text form's keys, the action under "action" ("delay 200ms").</summary>
    /// <exception cref="FaultRuleFormatException">Names the offending entry ("nth: 0") and what was expected.</exception>
    public static FaultRule FromDictionary(IReadOnlyDictionary<string, string> map) => FaultRuleReader.ReadMap(map);

    /// <summary>Checks the values and how they combine; the parsers run the same checks.</summary>
    /// <exception cref="FaultRuleFormatException">Names the offending condition in the text form.</exception>
    public void Validate()
    {
        if (FindProblem() is not { } problem) return;
        string? value = Array.IndexOf(Keys, problem.Key) >= 0 ? FormatValue(problem.Key) : null;
        throw new FaultRuleFormatException(value is null ? Action.ToString() : $"{problem.Key}={value}", problem.Expected);
    }

    internal RuleProblem? FindProblem()
    {
        if (Action.FindProblem() is { } actionProblem) return actionProblem;
        if (Direction is not (FaultDirection.Egress or FaultDirection.Ingress or FaultDirection.Both))
            return new RuleProblem("dir", "expected egress, ingress or both");
        if (!Enum.IsDefined(Protocol)) return new RuleProblem("proto", "expected tcp, icmp, arp or any");
        if (Protocol is FaultProtocol.Icmp or FaultProtocol.Arp)
        {
            string notTcp = $"needs TCP, but the rule says proto={FormatValue("proto")}";
            if (From?.Port is not null) return new RuleProblem("from", "a port " + notTcp);
            if (To?.Port is not null) return new RuleProblem("to", "a port " + notTcp);
            if (Flags is not null) return new RuleProblem("tcp", "matching TCP flags " + notTcp);
            if (PayloadLength is not null) return new RuleProblem("len", "matching the TCP data length " + notTcp);
            if (Sequence is not null) return new RuleProblem("seq", "matching the TCP sequence " + notTcp);
        }
        const string EndpointForms = "expected an address, address:port or *:port, such as 10.0.0.1:80";
        if (From is { Address: null, Port: null }) return new RuleProblem("from", EndpointForms);
        if (To is { Address: null, Port: null }) return new RuleProblem("to", EndpointForms);
        if (PayloadLength is { Wraps: true }) return new RuleProblem("len", "expected a length range whose first number is not above its last");
        if (Nth is < 1) return new RuleProblem("nth", "expected a match number of 1 or more");
        if (Every is < 1) return new RuleProblem("every", "expected a number of matches of 1 or more");
        if (Nth is not null && Every is not null)
            return new RuleProblem("every", "nth and every exclude each other: nth takes one match, every takes each k-th");
        if (Count is < 1) return new RuleProblem("count", "expected a number of frames of 1 or more");
        if (After is { Nanoseconds: < 0 }) return new RuleProblem("after", "expected a time of 0 or later");
        if (Until is { } until && until <= (After ?? Instant.Zero))
            return new RuleProblem("until", After is not null ? $"expected a time later than after={FormatValue("after")}" : "expected a time later than 0s");
        if (!(Probability is >= 0 and <= 1)) return new RuleProblem("p", "expected a probability from 0 to 1, such as p=0.1");
        if (Name is not null && (Name.Length == 0 || (Name.Contains('"') && Name.Contains('\''))))
            return new RuleProblem("name", "expected a non-empty name without both kinds of quote");
        return null;
    }

    /// <summary>The match conditions (not the selection): would this rule look at the frame?</summary>
    internal bool Matches(in FrameSummary frame, FaultDirection direction)
    {
        if ((Direction & direction) == 0) return false;
        if (Protocol != FaultProtocol.Any && Protocol != frame.Protocol) return false;
        if (NeedsTcpHeader && !frame.HasTcpHeader) return false;
        if (From is { } from && !from.Matches(frame.HasAddresses, frame.Source, frame.SourcePort)) return false;
        if (To is { } to && !to.Matches(frame.HasAddresses, frame.Destination, frame.DestinationPort)) return false;
        if (Flags is { } flags && !flags.Matches(frame.TcpFlags)) return false;
        if (PayloadLength is { } length && !length.Contains((uint)frame.PayloadLength)) return false;
        if (Sequence is { } sequence && !sequence.Contains(frame.Sequence)) return false;
        return Action.AppliesTo(frame);
    }

    private bool NeedsTcpHeader =>
        From?.Port is not null || To?.Port is not null || Flags is not null || PayloadLength is not null || Sequence is not null;

    /// <summary>The text form: the action, then every condition that is not at its default, in <see cref="Keys"/> order.</summary>
    public override string ToString()
    {
        var text = new StringBuilder(Action.ToString());
        foreach (string key in Keys)
        {
            if (FormatValue(key) is { } value) text.Append(' ').Append(key).Append('=').Append(value);
        }
        return text.ToString();
    }

    /// <summary>The value of <paramref name="key"/> in the text form, or null when the rule leaves it at its default.</summary>
    private string? FormatValue(string key) => key switch
    {
        "dir" => Direction == FaultDirection.Both ? null : Direction.ToString().ToLowerInvariant(),
        "proto" => Protocol == FaultProtocol.Any ? null : Protocol.ToString().ToLowerInvariant(),
        "from" => From?.ToString(),
        "to" => To?.ToString(),
        "tcp" => Flags?.ToString(),
        "len" => PayloadLength?.ToString(),
        "seq" => Sequence?.ToString(),
        "nth" => Nth?.ToString(CultureInfo.InvariantCulture),
        "every" => Every?.ToString(CultureInfo.InvariantCulture),
        "count" => Count?.ToString(CultureInfo.InvariantCulture),
        "after" => After is { } after ? DurationText.Format(after.Nanoseconds) : null,
        "until" => Until is { } until ? DurationText.Format(until.Nanoseconds) : null,
        "p" => Probability == 1 ? null : Probability.ToString("R", CultureInfo.InvariantCulture),
        "name" => Name is null ? null : Name.Contains('"') ? $"'{Name}'" : $"\"{Name}\"",
        _ => throw new ArgumentOutOfRangeException(nameof(key), key, null),
    };
}
