using System.Globalization;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link.Faults;

/// <summary>A fault rule that does not read: the token at fault, as the user wrote it, and what was expected there.</summary>
public sealed class FaultRuleFormatException(string token, string expected)
    : FormatException($"'{token}': {expected}")
{
    /// <summary>The offending token ("nth=0" in a line, "nth: 0" from a map).</summary>
    public string Token { get; } = token;

    /// <summary>What would have been right, e.g. "expected a match number of 1 or more".</summary>
    public string Expected { get; } = expected;
}

/// <summary>
/// Reads a <see cref="FaultRule"/> from its text form or from a map of the same keys. Both feed
/// key/value pairs to one reader, which turns each value into its type, then asks the rule
/// itself what is wrong (<see cref="FaultRule.FindProblem"/>) and reports that against the
/// token the user wrote.
/// </summary>
internal sealed class FaultRuleReader
{
    private const string ActionKey = "action";
    private const string ExpectedAction = "expected an action: drop, delay 200ms, duplicate 1, reorder 1 or corrupt";
    private const string ExpectedWholeNumber = "expected a whole number";
    private const string ExpectedDuration = "expected a duration with a unit: ns, us, ms, s or m, such as 200ms or 1.5s";

    /// <summary>Keys that belong to one action, with that action's word.</summary>
    private static readonly (string Key, string Action)[] ActionKeys = [("timeout", "reorder"), ("at", "corrupt")];

    /// <summary>Every key as the user wrote it, for messages; "action" holds the action with its argument.</summary>
    private readonly Dictionary<string, string> _tokens = [];
    private FaultRule _rule = new(new DropAction());
    private string _actionWord = "drop";
    private TimeSpan? _reorderTimeout;
    private int? _corruptOffset;

    /// <summary>Reads "ACTION [ARGUMENT] key=value ...", values optionally in single or double quotes.</summary>
    public static FaultRule ReadText(string text)
    {
        List<string> tokens = Tokenize(text);
        if (tokens.Count == 0) throw new FaultRuleFormatException(text, ExpectedAction);
        var reader = new FaultRuleReader();
        int next = 1;
        string? argument = tokens.Count > 1 && !tokens[1].Contains('=') ? tokens[next++] : null;
        reader.SetAction(tokens[0], argument, argument is null ? tokens[0] : $"{tokens[0]} {argument}");
        for (; next < tokens.Count; next++)
        {
            string token = tokens[next];
            int equals = token.IndexOf('=');
            if (equals <= 0) throw new FaultRuleFormatException(token, "expected key=value, such as tcp=S or nth=2");
            reader.Set(token[..equals], Unquote(token[(equals + 1)..]), token);
        }
        return reader.Finish();
    }

    /// <summary>Reads a map such as YAML's { action: "delay 200ms", tcp: "P.", nth: "1" }.</summary>
    public static FaultRule ReadMap(IReadOnlyDictionary<string, string> map)
    {
        if (!map.TryGetValue(ActionKey, out string? action)) throw new FaultRuleFormatException("(no action)", ExpectedAction);
        string[] words = action.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string actionToken = $"{ActionKey}: {action}";
        if (words.Length is 0 or > 2) throw new FaultRuleFormatException(actionToken, ExpectedAction);
        var reader = new FaultRuleReader();
        reader.SetAction(words[0], words.Length > 1 ? words[1] : null, actionToken);
        foreach ((string key, string value) in map)
        {
            if (key != ActionKey) reader.Set(key, value, $"{key}: {value}");
        }
        return reader.Finish();
    }

    private void SetAction(string word, string? argument, string token)
    {
        _tokens[ActionKey] = token;
        _actionWord = word;
        FaultAction action = word switch
        {
            "drop" or "corrupt" when argument is not null =>
                throw new FaultRuleFormatException(token, $"{word} takes no argument; conditions are key=value, such as tcp=S"),
            "drop" => new DropAction(),
            "corrupt" => new CorruptAction(),
            "delay" when argument is null => throw new FaultRuleFormatException(token, "expected the delay after it, such as delay 200ms"),
            "delay" => new DelayAction(ReadTimeSpan(argument, token)),
            "duplicate" => new DuplicateAction(argument is null ? 1 : ReadWholeNumber(argument, token)),
            "reorder" => new ReorderAction(argument is null ? 1 : ReadWholeNumber(argument, token)),
            _ => throw new FaultRuleFormatException(token, ExpectedAction),
        };
        _rule = _rule with { Action = action };
    }

    private void Set(string key, string value, string token)
    {
        if (!_tokens.TryAdd(key, token)) throw new FaultRuleFormatException(token, $"{key} is given twice");
        // Options of an action are kept aside: the action may not be known to take them until the end.
        switch (key)
        {
            case "timeout":
                _reorderTimeout = ReadTimeSpan(value, token);
                return;
            case "at":
                _corruptOffset = ReadWholeNumber(value, token);
                return;
        }
        _rule = key switch
        {
            "name" => _rule with { Name = value },
            "dir" => _rule with { Direction = ReadWord(value, token, "expected egress, ingress or both",
                ("egress", FaultDirection.Egress), ("ingress", FaultDirection.Ingress), ("both", FaultDirection.Both)) },
            "proto" => _rule with { Protocol = ReadWord(value, token, "expected tcp, icmp, arp or any",
                ("tcp", FaultProtocol.Tcp), ("icmp", FaultProtocol.Icmp), ("arp", FaultProtocol.Arp), ("any", FaultProtocol.Any)) },
            "from" => _rule with { From = ReadEndpoint(value, token) },
            "to" => _rule with { To = ReadEndpoint(value, token) },
            "tcp" => _rule with { Flags = ReadFlags(value, token) },
            "len" => _rule with { PayloadLength = ReadRange(value, token, "expected a length or range, such as 0, 1.. or 100..1460") },
            "seq" => _rule with { Sequence = ReadRange(value, token, "expected a sequence number or range, such as 1000 or 1000..2459") },
            "nth" => _rule with { Nth = ReadWholeNumber(value, token) },
            "every" => _rule with { Every = ReadWholeNumber(value, token) },
            "count" => _rule with { Count = ReadWholeNumber(value, token) },
            "after" => _rule with { After = new Instant(ReadNanoseconds(value, token)) },
            "until" => _rule with { Until = new Instant(ReadNanoseconds(value, token)) },
            "p" => _rule with { Probability = ReadProbability(value, token) },
            _ => throw new FaultRuleFormatException(token,
                $"unknown key '{key}'; expected one of {string.Join(", ", FaultRule.Keys)}, timeout (reorder), at (corrupt)"),
        };
    }

    private FaultRule Finish()
    {
        foreach ((string key, string action) in ActionKeys)
        {
            if (_actionWord != action && _tokens.TryGetValue(key, out string? token))
                throw new FaultRuleFormatException(token, $"{key} applies to {action} only");
        }
        FaultRule rule = _rule.Action switch
        {
            ReorderAction reorder when _reorderTimeout is { } timeout => _rule with { Action = reorder with { Timeout = timeout } },
            CorruptAction corrupt when _corruptOffset is { } offset => _rule with { Action = corrupt with { Offset = offset } },
            _ => _rule,
        };
        if (rule.FindProblem() is { } problem)
            throw new FaultRuleFormatException(_tokens.GetValueOrDefault(problem.Key) ?? _tokens[ActionKey], problem.Expected);
        return rule;
    }

    private static T ReadWord<T>(string value, string token, string expected, params ReadOnlySpan<(string Word, T Value)> words)
    {
        foreach ((string word, T result) in words)
        {
            if (word == value) return result;
        }
        throw new FaultRuleFormatException(token, expected);
    }

    private static FaultEndpoint ReadEndpoint(string value, string token) =>
        FaultEndpoint.TryParse(value, out FaultEndpoint endpoint) ? endpoint
        : throw new FaultRuleFormatException(token, "expected an address, address:port or *:port, such as 10.0.0.1:80");

    private static TcpFlagMatch ReadFlags(string value, string token) =>
        TcpFlagMatch.TryParse(value, out TcpFlagMatch flags, out string? problem) ? flags : throw new FaultRuleFormatException(token, problem!);

    private static NumberRange ReadRange(string value, string token, string expected) =>
        NumberRange.TryParse(value, out NumberRange range) ? range : throw new FaultRuleFormatException(token, expected);

    private static int ReadWholeNumber(string value, string token) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int number) ? number
        : throw new FaultRuleFormatException(token, ExpectedWholeNumber);

    private static double ReadProbability(string value, string token) =>
        double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double p) ? p
        : throw new FaultRuleFormatException(token, "expected a probability from 0 to 1, such as p=0.1");

    private static long ReadNanoseconds(string value, string token) =>
        DurationText.TryParse(value, out long nanoseconds) ? nanoseconds : throw new FaultRuleFormatException(token, ExpectedDuration);

    private static TimeSpan ReadTimeSpan(string value, string token)
    {
        long nanoseconds = ReadNanoseconds(value, token);
        // TimeSpan counts 100 ns ticks; rounding silently would change the experiment.
        if (nanoseconds % 100 != 0) throw new FaultRuleFormatException(token, "expected a whole number of 100 ns, the finest a delay can be");
        return TimeSpan.FromTicks(nanoseconds / 100);
    }

    /// <summary>Splits on white space, except inside single or double quotes.</summary>
    private static List<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        int start = -1;
        char quote = '\0';
        for (int i = 0; i <= text.Length; i++)
        {
            char c = i < text.Length ? text[i] : ' ';
            if (quote != '\0')
            {
                if (i == text.Length) throw new FaultRuleFormatException(text[start..], $"the {quote} quote is not closed");
                if (c == quote) quote = '\0';
            }
            else if (char.IsWhiteSpace(c))
            {
                if (start >= 0) tokens.Add(text[start..i]);
                start = -1;
            }
            else
            {
                if (start < 0) start = i;
                if (c is '"' or '\'') quote = c;
            }
        }
        return tokens;
    }

    private static string Unquote(string value) =>
        value.Length >= 2 && value[0] is '"' or '\'' && value[^1] == value[0] ? value[1..^1] : value;
}
