using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TcpLab.Lab.Trace;
using TcpLab.Stack;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace TcpLab.Lab.Scenarios;

/// <summary>A scenario file the lab refuses, with the file, the line and what is wrong.</summary>
public sealed class ScenarioException(string file, int line, string message)
    : Exception($"{file}:{line}: {message}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
}

/// <summary>
/// Reads a scenario file (YAML) into a <see cref="Scenario"/>, checking everything before
/// anything runs: unknown keys, host names, addresses, sysctl keys and values, fault rules,
/// step and expectation forms. Errors name the file and line. The format is documented in
/// docs/scenarios.md.
/// </summary>
public sealed partial class ScenarioReader
{
    private static readonly string[] TopLevelKeys =
        ["name", "title", "source", "description", "hosts", "wire", "faults", "sysctls", "steps", "expect",
         "current-kernel", "duration", "snapshots", "linux-notes", "linux-side"];

    private readonly string _file;
    private readonly Dictionary<string, (Ipv4Cidr Address, HostKind Kind, int Line, int? Mtu)> _hosts = new();
    private readonly Dictionary<string, string> _sockets = new();   // socket name -> host
    private readonly Dictionary<string, string> _acceptNames = new();   // accept-as name -> host (also names NAME2, NAME3, ...)

    private ScenarioReader(string file) => _file = file;

    public static Scenario ReadFile(string path) => Read(File.ReadAllText(path), path);

    public static Scenario Read(string yaml, string file)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ScenarioException(file, (int)e.Start.Line, "not valid YAML: " + e.Message);
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new ScenarioException(file, 1, "a scenario file holds one mapping (name:, hosts:, steps:, expect:, ...)");
        return new ScenarioReader(file).ReadScenario(root);
    }

    private Scenario ReadScenario(YamlMappingNode root)
    {
        CheckKeys(root, TopLevelKeys, "scenario");
        ReadHosts(Required<YamlMappingNode>(root, "hosts"));
        var steps = ReadList(root, "steps", ReadStep);
        var document = new Variant("document", ReadSysctls(Optional<YamlMappingNode>(root, "sysctls")), ReadList(root, "expect", ReadExpectation));
        Variant? current = null;
        if (Optional<YamlMappingNode>(root, "current-kernel") is { } currentNode)
        {
            CheckKeys(currentNode, ["sysctls", "expect"], "current-kernel");
            current = new Variant("current-kernel", ReadSysctls(Optional<YamlMappingNode>(currentNode, "sysctls")),
                                  ReadList(currentNode, "expect", ReadExpectation));
        }
        return new Scenario
        {
            Name = Text(Required<YamlScalarNode>(root, "name")),
            Title = Text(Required<YamlScalarNode>(root, "title")),
            Source = Optional<YamlScalarNode>(root, "source")?.Value,
            Description = Optional<YamlScalarNode>(root, "description")?.Value?.Trim(),
            FilePath = _file,
            Hosts = _hosts.Select(h => new HostSpec(h.Key, h.Value.Address, h.Value.Kind, h.Value.Line, h.Value.Mtu)).ToList(),
            Wire = ReadWire(Optional<YamlMappingNode>(root, "wire")),
            Faults = ReadList(root, "faults", ReadFault),
            Document = document,
            CurrentKernel = current,
            Steps = steps,
            Duration = Optional<YamlScalarNode>(root, "duration") is { } d ? Duration(d) : TimeSpan.FromSeconds(200),
            Snapshots = Optional<YamlSequenceNode>(root, "snapshots")?.Children.Select(n => Duration(Scalar(n))).ToList() ?? [],
            LinuxNotes = Optional<YamlScalarNode>(root, "linux-notes")?.Value?.Trim(),
            LinuxSide = Optional<YamlScalarNode>(root, "linux-side") is { } side ? HostName(side) : DefaultLinuxSide(root),
        };
    }

    // ----- Hosts, wire, sysctls, faults -----

    private void ReadHosts(YamlMappingNode hosts)
    {
        foreach (var (keyNode, value) in hosts.Children)
        {
            string name = Text(Scalar(keyNode));
            if (!HostName().IsMatch(name)) throw Error(keyNode, $"host name '{name}': use letters, digits and '-'");
            YamlScalarNode addressNode;
            HostKind kind = HostKind.Managed;
            int? mtu = null;
            if (value is YamlMappingNode spec)
            {
                CheckKeys(spec, ["address", "kind", "mtu"], $"host {name}");
                if (Optional<YamlScalarNode>(spec, "mtu") is { } mtuNode) mtu = Mtu(mtuNode);
                addressNode = Required<YamlScalarNode>(spec, "address");
                if (Optional<YamlScalarNode>(spec, "kind") is { } kindNode)
                    kind = Text(kindNode) switch
                    {
                        "managed" => HostKind.Managed,
                        "linux" => HostKind.Linux,
                        var other => throw Error(kindNode, $"host kind '{other}': expected managed or linux"),
                    };
            }
            else addressNode = Scalar(value);
            if (!Ipv4Cidr.TryParse(addressNode.Value, out Ipv4Cidr address))
                throw Error(addressNode, $"'{addressNode.Value}' is not an address with prefix, like 10.0.0.1/24");
            _hosts.Add(name, (address, kind, Line(keyNode), mtu));
        }
        if (_hosts.Count < 2) throw Error(hosts, "a scenario needs at least two hosts");
    }

    private WireSpec ReadWire(YamlMappingNode? wire)
    {
        if (wire is null) return new WireSpec();
        CheckKeys(wire, ["delay", "rate", "queue", "mtu"], "wire");
        return new WireSpec(
            Optional<YamlScalarNode>(wire, "delay") is { } delay ? Duration(delay) : TimeSpan.Zero,
            Optional<YamlScalarNode>(wire, "rate") is { } rate ? Rate(rate) : 0,
            Optional<YamlScalarNode>(wire, "queue") is { } queue ? Integer(queue, 1, int.MaxValue) : 0,
            Optional<YamlScalarNode>(wire, "mtu") is { } mtu ? Mtu(mtu) : 1500);
    }

    /// <summary>A link MTU: at least IPv4's 68 (RFC 791), at most 65535 (an IPv4 datagram's largest, and a TAP device's).</summary>
    private int Mtu(YamlScalarNode node) => Integer(node, 68, 65535);

    private IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> ReadSysctls(YamlMappingNode? sysctls)
    {
        var result = new Dictionary<string, IReadOnlyDictionary<string, string>>();
        if (sysctls is null) return result;
        foreach (var (hostNode, settingsNode) in sysctls.Children)
        {
            string host = Text(Scalar(hostNode));
            if (host != "all" && !_hosts.ContainsKey(host)) throw Error(hostNode, $"sysctls for unknown host '{host}' (hosts: {string.Join(", ", _hosts.Keys)}, or all)");
            if (settingsNode is not YamlMappingNode settings) throw Error(settingsNode, "expected key: value pairs of sysctls");
            var values = new Dictionary<string, string>();
            foreach (var (keyNode, valueNode) in settings.Children)
            {
                string key = Text(Scalar(keyNode)), value = Text(Scalar(valueNode));
                try
                {
                    SysctlRegistry.Set(new Sysctls(), key, value);
                }
                catch (SysctlException e)
                {
                    throw Error(keyNode, e.Message);
                }
                values[key] = value;
            }
            result[host] = values;
        }
        return result;
    }

    private FaultSpec ReadFault(YamlNode node)
    {
        try
        {
            if (node is YamlMappingNode map)
            {
                var entries = map.Children.ToDictionary(e => Text(Scalar(e.Key)), e => Text(Scalar(e.Value)));
                foreach (string key in new[] { "from", "to" })
                    if (entries.TryGetValue(key, out string? endpoint))
                        entries[key] = ResolveHostNames($"{key}={endpoint}", node)[(key.Length + 1)..];
                FaultRule rule = FaultRule.FromDictionary(entries);
                return new FaultSpec(rule, rule.ToString(), Line(node));
            }
            string text = ResolveHostNames(Text(Scalar(node)), node);
            return new FaultSpec(FaultRule.Parse(text), text, Line(node));
        }
        catch (FaultRuleFormatException e)
        {
            throw Error(node, "fault rule: " + e.Message);
        }
    }

    /// <summary>Lets rules say from=client and to=server:80: host names become their addresses.</summary>
    private string ResolveHostNames(string text, YamlNode node) =>
        HostReference().Replace(text, m =>
        {
            string name = m.Groups["host"].Value;
            if (_hosts.TryGetValue(name, out var host)) return m.Groups["key"].Value + host.Address.Address + m.Groups["port"].Value;
            if (Ipv4Address.TryParse(name, out _) || name == "*") return m.Value;
            throw Error(node, $"fault rule names unknown host '{name}'");
        });

    [GeneratedRegex(@"(?<key>\b(?:from|to)=)(?<host>[A-Za-z*][A-Za-z0-9-]*|\d+\.\d+\.\d+\.\d+)(?<port>:\d+)?")]
    private static partial Regex HostReference();

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9-]*$")]
    private static partial Regex HostName();

    // ----- Steps -----

    private static readonly string[] Actions = ["listen", "connect", "send", "send-bytes", "shutdown", "close", "abort", "stop-reading", "resume-reading", "inject", "inject-into", "flood"];

    /// <summary>The keys each action takes besides at: and when:.</summary>
    private static readonly Dictionary<string, string[]> ActionKeys = new()
    {
        ["listen"] = ["host", "backlog", "accept-as", "options"],
        ["connect"] = ["host", "as", "local-port", "options", "fastopen"],
        ["send"] = ["socket"],
        ["send-bytes"] = ["socket"],
        ["inject"] = ["host", "tcp", "seq", "ack", "from-port"],
        ["inject-into"] = ["host", "tcp", "seq"],
        ["flood"] = ["host", "tcp", "count", "rate", "from", "arp"],
    };

    private Step ReadStep(YamlNode node)
    {
        if (node is not YamlMappingNode step) throw Error(node, "a step is a mapping like { at: 1s, close: c }");
        CheckKeys(step, ["at", "when", .. ActionKeys.Values.SelectMany(k => k).Distinct(), .. Actions], "step");
        string[] actions = Actions.Where(a => step.Children.ContainsKey(new YamlScalarNode(a))).ToArray();
        if (actions.Length != 1) throw Error(step, $"a step does exactly one of {string.Join(", ", Actions)}");
        string action = actions[0];
        TimeSpan at = Optional<YamlScalarNode>(step, "at") is { } atNode ? Duration(atNode) : TimeSpan.Zero;
        StateCondition? when = Optional<YamlScalarNode>(step, "when") is { } whenNode ? Condition(whenNode) : null;
        YamlScalarNode value = Required<YamlScalarNode>(step, action);
        Step result = ReadAction(step, action, value, at, when, Line(step));
        // After the action's own checks, which explain themselves better where they apply.
        string[] applicable = ["at", "when", action, .. ActionKeys.GetValueOrDefault(action, [])];
        if (step.Children.Keys.FirstOrDefault(k => !applicable.Contains(Text(Scalar(k)))) is { } stray)
            throw Error(stray, $"'{Text(Scalar(stray))}' does not apply to a {action} step (it takes: {string.Join(", ", applicable.Where(k => k != action))})");
        return result;
    }

    private Step ReadAction(YamlMappingNode step, string action, YamlScalarNode value, TimeSpan at, StateCondition? when, int line)
    {
        if (action is "inject" or "inject-into") return ReadInject(step, action, value, at, when, line);
        if (action == "flood") return ReadFlood(step, value, at, when, line);
        switch (action)
        {
            case "listen":
            {
                string host = HostOf(step);
                ushort port = (ushort)Integer(value, 1, 65535);
                int backlog = Optional<YamlScalarNode>(step, "backlog") is { } b ? Integer(b, 0, 65535) : 128;
                string? acceptAs = Optional<YamlScalarNode>(step, "accept-as")?.Value;
                if (acceptAs is not null) _sockets[acceptAs] = _acceptNames[acceptAs] = host;
                return new ListenStep(host, at, when, line, port, backlog, acceptAs, ReadOptions(Optional<YamlMappingNode>(step, "options")));
            }
            case "connect":
            {
                string host = HostOf(step);
                var (target, port) = Endpoint(value);
                string socket = Text(Required<YamlScalarNode>(step, "as"));
                _sockets[socket] = host;
                ushort localPort = Optional<YamlScalarNode>(step, "local-port") is { } lp ? (ushort)Integer(lp, 1, 65535) : (ushort)0;
                byte[]? fastOpenData = null;
                if (Optional<YamlScalarNode>(step, "fastopen") is { } data)
                {
                    fastOpenData = Encoding.UTF8.GetBytes(Text(data));
                    if (fastOpenData.Length == 0) throw Error(data, "fastopen: the data to send with sendto(MSG_FASTOPEN), e.g. \"GET /\"");
                }
                return new ConnectStep(host, at, when, line, target, port, socket, localPort, ReadOptions(Optional<YamlMappingNode>(step, "options")))
                {
                    FastOpenData = fastOpenData,
                };
            }
            case "send":
            case "send-bytes":
            {
                string socket = SocketOf(step);
                byte[] data = action == "send" ? Encoding.UTF8.GetBytes(Text(value)) : PatternBytes(Integer(value, 1, int.MaxValue));
                return new SendStep(SocketHost(socket), at, when, line, socket, data);
            }
            default:
            {
                var kind = action switch
                {
                    "shutdown" => SocketAction.Shutdown,
                    "close" => SocketAction.Close,
                    "abort" => SocketAction.Abort,
                    "stop-reading" => SocketAction.StopReading,
                    _ => SocketAction.ResumeReading,
                };
                string socket = Text(value);
                RequireSocket(socket, value);
                return new SocketStep(SocketHost(socket), at, when, line, socket, kind);
            }
        }
    }

    /// <summary>"server:8080" (a host of the scenario) or "10.0.0.99:80" (any address).</summary>
    private (Ipv4Address Address, ushort Port) Endpoint(YamlScalarNode node)
    {
        string text = Text(node);
        int colon = text.LastIndexOf(':');
        string name = colon > 0 ? text[..colon] : "";
        Ipv4Address address;
        if (_hosts.TryGetValue(name, out var host)) address = host.Address.Address;
        else if (!Ipv4Address.TryParse(name, out address))
            throw Error(node, $"expected HOST:PORT with a host of the scenario ({string.Join(", ", _hosts.Keys)}) or an address (got '{text}')");
        return (address, (ushort)Integer(new YamlScalarNode(text[(colon + 1)..]), 1, 65535, node));
    }

    /// <summary>
    /// inject: "server:8888" with tcp: SF, seq:, ack:, from-port: — a crafted segment from the
    /// step's host; inject-into: SOCKET with tcp: and an optional seq: offset — a segment of
    /// that socket's connection, from its peer (the step's host must be that peer).
    /// </summary>
    private InjectStep ReadInject(YamlMappingNode step, string action, YamlScalarNode value, TimeSpan at, StateCondition? when, int line)
    {
        string host = HostOf(step);
        TcpFlags flags = ExactFlags(Required<YamlScalarNode>(step, "tcp"));
        uint Number(string key) => Optional<YamlScalarNode>(step, key) is { } n
            ? uint.TryParse(Text(n), NumberStyles.None, CultureInfo.InvariantCulture, out uint v) ? v : throw Error(n, $"{key}: a 32-bit number")
            : 0;
        if (action == "inject-into")
        {
            if ((Optional<YamlScalarNode>(step, "ack") ?? Optional<YamlScalarNode>(step, "from-port")) is { } extra)
                throw Error(extra, "inject-into takes its ports and ack from the socket's connection; only tcp: and seq: (an offset) apply");
            RequireSocket(Text(value), value);
            return new InjectStep(host, at, when, line, flags, Number("seq"), 0) { IntoSocket = Text(value) };
        }
        var (to, port) = Endpoint(value);
        ushort fromPort = Optional<YamlScalarNode>(step, "from-port") is { } fp ? (ushort)Integer(fp, 1, 65535) : (ushort)40000;
        return new InjectStep(host, at, when, line, flags, Number("seq"), Number("ack")) { To = to, Port = port, FromPort = fromPort };
    }

    /// <summary>The flags of a crafted segment: exact ones ("SF", "none"), not a "+" pattern.</summary>
    private TcpFlags ExactFlags(YamlScalarNode node)
    {
        if (!TcpFlagMatch.TryParse(Text(node), out TcpFlagMatch flags, out string? problem) || flags.ContainsAll)
            throw Error(node, $"tcp flags '{node.Value}': {problem ?? "give the exact flags, e.g. SF or none"}");
        return flags.Flags;
    }

    /// <summary>
    /// flood: "server:80" with tcp:, count:, rate: (a second), from: (the range the source
    /// addresses are drawn from; the step host's own address if not given) and arp: (answer,
    /// the default, or none: whether the lab answers ARP for the range). The target must be a
    /// host of the scenario and the range must lie in its subnet, so that whatever the target
    /// answers stays on the lab's wire; it must hold no host of the scenario, which would
    /// answer for its address.
    /// </summary>
    private FloodStep ReadFlood(YamlMappingNode step, YamlScalarNode value, TimeSpan at, StateCondition? when, int line)
    {
        string host = HostOf(step);
        TcpFlags flags = ExactFlags(Required<YamlScalarNode>(step, "tcp"));
        var (to, port) = Endpoint(value);
        var (targetName, target) = _hosts.Select(h => (h.Key, h.Value.Address)).FirstOrDefault(h => h.Address.Address == to);
        if (targetName is null)
            throw Error(value, $"a flood goes to a host of the scenario ({string.Join(", ", _hosts.Keys)}), so that its answers stay on the lab's wire");
        var subnet = new Ipv4Cidr(target.Network, target.PrefixLength);
        Ipv4Cidr from = new(_hosts[host].Address.Address, 32);
        if (Optional<YamlScalarNode>(step, "from") is { } fromNode)
        {
            if (!Ipv4Cidr.TryParse(Text(fromNode), out from))
                from = Ipv4Address.TryParse(Text(fromNode), out Ipv4Address single) ? new Ipv4Cidr(single, 32)
                    : throw Error(fromNode, $"from: '{fromNode.Value}' is not an address or a range like 10.0.0.128/25");
            if (from.PrefixLength < subnet.PrefixLength || !subnet.Contains(from.Address))
                throw Error(fromNode, $"from: {from} is not inside {targetName}'s subnet {subnet}: the flood's answers must stay on the lab's wire");
            bool small = from.PrefixLength >= 31;   // larger ranges never use their first and last address
            if (small && (from.Contains(subnet.Network) || from.Contains(subnet.DirectedBroadcast)))
                throw Error(fromNode, $"from: {from} holds the network or broadcast address of {subnet}");
            if (_hosts.FirstOrDefault(h => from.Contains(h.Value.Address.Address)).Key is { } taken)
                throw Error(fromNode, $"from: {from} holds {taken}'s address {_hosts[taken].Address.Address}; spoofed sources must belong to nobody (leave from: out to flood from {host}'s own address)");
        }
        bool standIn = true;
        if (Optional<YamlScalarNode>(step, "arp") is { } arp)
        {
            standIn = Text(arp) switch
            {
                "answer" => true,
                "none" => false,
                var other => throw Error(arp, $"arp: '{other}': answer (the lab answers ARP for the spoofed addresses) or none"),
            };
            if (Optional<YamlScalarNode>(step, "from") is null) throw Error(arp, "arp: applies to spoofed addresses (from:); the flooding host answers for its own");
        }
        int count = Integer(Required<YamlScalarNode>(step, "count"), 1, 1_000_000);
        int rate = Integer(Required<YamlScalarNode>(step, "rate"), 1, 1_000_000);
        return new FloodStep(host, at, when, line, flags, to, port, from, count, rate, standIn && Optional<YamlScalarNode>(step, "from") is not null);
    }

    /// <summary>Deterministic payload bytes for send-bytes: the same on every run and host.</summary>
    internal static byte[] PatternBytes(int count)
    {
        var data = new byte[count];
        new DeterministicRandom(0x5CE7A210).NextBytes(data);
        return data;
    }

    private string HostName(YamlScalarNode node) =>
        _hosts.ContainsKey(Text(node)) ? Text(node) : throw Error(node, $"unknown host '{node.Value}' (hosts: {string.Join(", ", _hosts.Keys)})");

    /// <summary>The server, or the last host when there is none of that name.</summary>
    private string DefaultLinuxSide(YamlMappingNode root) =>
        _hosts.ContainsKey("server") ? "server" : _hosts.Keys.Last();

    private string HostOf(YamlMappingNode step)
    {
        YamlScalarNode hostNode = Required<YamlScalarNode>(step, "host");
        string host = Text(hostNode);
        if (!_hosts.ContainsKey(host)) throw Error(hostNode, $"unknown host '{host}' (hosts: {string.Join(", ", _hosts.Keys)})");
        return host;
    }

    private string SocketOf(YamlMappingNode step)
    {
        YamlScalarNode node = Required<YamlScalarNode>(step, "socket");
        RequireSocket(Text(node), node);
        return Text(node);
    }

    private void RequireSocket(string name, YamlNode node)
    {
        if (FindSocketHost(name) is null)
            throw Error(node, $"unknown socket '{name}': name it first with connect ... as: {name}, or listen ... accept-as: {name}");
    }

    private string SocketHost(string name) => FindSocketHost(name)!;

    /// <summary>The host of a named socket; the second and later connections a listener accepts are NAME2, NAME3, ...</summary>
    private string? FindSocketHost(string name)
    {
        if (_sockets.TryGetValue(name, out string? host)) return host;
        int digits = name.Length - name.AsSpan().TrimEnd("0123456789").Length;
        if (digits == 0 || digits == name.Length || name[^digits] == '0' || name[^digits..] == "1") return null;
        return _acceptNames.GetValueOrDefault(name[..^digits]);
    }

    private StateCondition Condition(YamlScalarNode node)
    {
        // "c is CLOSE_WAIT"
        string[] words = Text(node).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length != 3 || words[1] != "is")
            throw Error(node, $"when: '{node.Value}': expected 'SOCKET is STATE', e.g. 's is CLOSE_WAIT'");
        TcpState state = State(new YamlScalarNode(words[2]), node);
        RequireSocket(words[0], node);
        return new StateCondition(words[0], state);
    }

    private SocketOptionsSpec ReadOptions(YamlMappingNode? options)
    {
        if (options is null) return new SocketOptionsSpec();
        CheckKeys(options, ["keepalive", "keepidle", "keepintvl", "keepcnt", "linger", "nodelay", "rcvbuf", "sndbuf", "syncnt", "fastopen"], "options");
        YamlScalarNode? Get(string key) => Optional<YamlScalarNode>(options, key);
        var spec = new SocketOptionsSpec(
            KeepAlive: Get("keepalive") is { } ka ? Boolean(ka) : null,
            KeepIdle: Get("keepidle") is { } ki ? Duration(ki) : null,
            KeepInterval: Get("keepintvl") is { } kv ? Duration(kv) : null,
            KeepCount: Get("keepcnt") is { } kc ? Integer(kc, 1, 127) : null,
            Linger: Get("linger") is { } l ? Duration(l) : null,
            NoDelay: Get("nodelay") is { } nd ? Boolean(nd) : null,
            ReceiveBuffer: Get("rcvbuf") is { } rb ? Integer(rb, 1, int.MaxValue) : null,
            SendBuffer: Get("sndbuf") is { } sb ? Integer(sb, 1, int.MaxValue) : null,
            SynRetries: Get("syncnt") is { } sc ? Integer(sc, 1, 127) : null,
            FastOpenQueue: Get("fastopen") is { } fo ? Integer(fo, 0, 65535) : null);
        try
        {
            spec.ToOptions().Validate();
        }
        catch (TcpException e)
        {
            throw Error(options, e.Message);
        }
        return spec;
    }

    // ----- Expectations -----

    private static readonly string[] ExpectationKinds = ["packets", "state", "states", "error", "counter", "received"];

    private Expectation ReadExpectation(YamlNode node)
    {
        if (node is not YamlMappingNode map) throw Error(node, "an expectation is a mapping like { packets: { from: client, tcp: S }, count: 1 }");
        string[] kinds = ExpectationKinds.Where(k => map.Children.ContainsKey(new YamlScalarNode(k))).ToArray();
        if (kinds.Length != 1) throw Error(map, $"an expectation is exactly one of {string.Join(", ", ExpectationKinds)}");
        int line = Line(map);
        switch (kinds[0])
        {
            case "packets":
            {
                CheckKeys(map, ["packets", "at", "count", "tolerance"], "packets expectation");
                PacketPattern pattern = Pattern(Required<YamlMappingNode>(map, "packets"));
                var at = Optional<YamlSequenceNode>(map, "at")?.Children.Select(n => Duration(Scalar(n))).ToList();
                NumberRange? count = Optional<YamlScalarNode>(map, "count") is { } c ? Count(c) : null;
                if ((at is null) == (count is null)) throw Error(map, "a packets expectation gives either at: [times] or count: N");
                return new PacketsExpectation(line, pattern, at, count, ReadTolerance(map));
            }
            case "state":
            {
                YamlMappingNode s = Required<YamlMappingNode>(map, "state");
                CheckKeys(s, ["socket", "is", "at"], "state expectation");
                return new StateExpectation(line, Socket(s), State(Required<YamlScalarNode>(s, "is")), Duration(Required<YamlScalarNode>(s, "at")));
            }
            case "states":
            {
                YamlMappingNode s = Required<YamlMappingNode>(map, "states");
                CheckKeys(s, ["socket", "path"], "states expectation");
                YamlScalarNode path = Required<YamlScalarNode>(s, "path");
                return new StatePathExpectation(line, Socket(s), Text(path).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => State(new YamlScalarNode(w), path)).ToList());
            }
            case "error":
            {
                YamlMappingNode e = Required<YamlMappingNode>(map, "error");
                CheckKeys(e, ["socket", "errno", "at", "tolerance"], "error expectation");
                YamlScalarNode errnoNode = Required<YamlScalarNode>(e, "errno");
                if (!Enum.TryParse(Text(errnoNode), out Errno errno) || !Enum.IsDefined(errno))
                    throw Error(errnoNode, $"unknown errno '{errnoNode.Value}' (e.g. ETIMEDOUT, ECONNREFUSED, ECONNRESET, EHOSTUNREACH)");
                TimeSpan? at = Optional<YamlScalarNode>(e, "at") is { } a ? Duration(a) : null;
                return new ErrorExpectation(line, Socket(e), errno, at, ReadTolerance(e));
            }
            case "counter":
            {
                YamlMappingNode c = Required<YamlMappingNode>(map, "counter");
                CheckKeys(c, ["host", "name", "equals", "at-least", "at-most"], "counter expectation");
                string host = HostOf(c);
                YamlScalarNode nameNode = Required<YamlScalarNode>(c, "name");
                if (!new Counters().TryGet(Text(nameNode), out _))
                    throw Error(nameNode, $"unknown counter '{nameNode.Value}' (nstat names like TcpExtTCPSynRetrans, TcpRetransSegs)");
                (Comparison op, YamlScalarNode value) = Optional<YamlScalarNode>(c, "equals") is { } eq ? (Comparison.Equals, eq)
                    : Optional<YamlScalarNode>(c, "at-least") is { } ge ? (Comparison.AtLeast, ge)
                    : Optional<YamlScalarNode>(c, "at-most") is { } le ? (Comparison.AtMost, le)
                    : throw Error(c, "a counter expectation needs equals:, at-least: or at-most:");
                return new CounterExpectation(line, host, Text(nameNode), op, Integer(value, 0, int.MaxValue));
            }
            default:
            {
                YamlMappingNode r = Required<YamlMappingNode>(map, "received");
                CheckKeys(r, ["socket", "equals-sent-by"], "received expectation");
                YamlScalarNode sender = Required<YamlScalarNode>(r, "equals-sent-by");
                RequireSocket(Text(sender), sender);
                return new ReceivedExpectation(line, Socket(r), Text(sender));
            }
        }
    }

    private PacketPattern Pattern(YamlMappingNode node)
    {
        CheckKeys(node, ["from", "to", "tcp", "len", "mss", "cause", "label", "after", "until"], "packet pattern");
        string? Host(string key)
        {
            if (Optional<YamlScalarNode>(node, key) is not { } h) return null;
            if (!_hosts.ContainsKey(Text(h))) throw Error(h, $"unknown host '{h.Value}'");
            return Text(h);
        }
        TcpFlagMatch? flags = null;
        if (Optional<YamlScalarNode>(node, "tcp") is { } tcp)
        {
            if (!TcpFlagMatch.TryParse(Text(tcp), out TcpFlagMatch match, out string? problem)) throw Error(tcp, $"tcp flags '{tcp.Value}': {problem}");
            flags = match;
        }
        NumberRange? Range(string key)
        {
            if (Optional<YamlScalarNode>(node, key) is not { } n) return null;
            return NumberRange.TryParse(Text(n), out NumberRange range) ? range : throw Error(n, $"{key} '{n.Value}': expected N, N..M or N..");
        }
        NumberRange? length = Range("len");
        TcpAnalysisFlags label = TcpAnalysisFlags.None;
        if (Optional<YamlScalarNode>(node, "label") is { } labelNode && !TcpFrameAnalysis.TryParseName(Text(labelNode), out label))
            throw Error(labelNode, $"label '{labelNode.Value}': not one of Wireshark's TCP analysis labels ({string.Join(", ", TcpFrameAnalysis.Names)})");
        TimeSpan? after = Optional<YamlScalarNode>(node, "after") is { } a ? Duration(a) : null;
        TimeSpan? until = Optional<YamlScalarNode>(node, "until") is { } u ? Duration(u) : null;
        if (after is { } from && until is { } to && to <= from) throw Error(node, $"until: {Text(Optional<YamlScalarNode>(node, "until")!)} is not after after: {Text(Optional<YamlScalarNode>(node, "after")!)}");
        return new PacketPattern(Host("from"), Host("to"), flags, length, Optional<YamlScalarNode>(node, "cause")?.Value)
        {
            Mss = Range("mss"),
            Label = label,
            After = after,
            Until = until,
        };
    }

    /// <summary>A packet count: N, a range N..M (both ends included), or N.. (at least N).</summary>
    private NumberRange Count(YamlScalarNode node) =>
        NumberRange.TryParse(Text(node), out NumberRange range) && !range.Wraps ? range
        : throw Error(node, $"count '{node.Value}': expected a number N, a range N..M or N.. (at least N)");

    private Tolerance ReadTolerance(YamlMappingNode map)
    {
        if (Optional<YamlScalarNode>(map, "tolerance") is not { } node) return new Tolerance.Fixed(TimeSpan.FromMilliseconds(1));
        return Text(node) == "kernel" ? new Tolerance.Kernel() : new Tolerance.Fixed(Duration(node));
    }

    private string Socket(YamlMappingNode node)
    {
        YamlScalarNode s = Required<YamlScalarNode>(node, "socket");
        RequireSocket(Text(s), s);
        return Text(s);
    }

    private TcpState State(YamlScalarNode node, YamlNode? at = null) =>
        TcpStateNames.TryParse(Text(node), out TcpState state) ? state
        : throw Error(at ?? node, $"unknown TCP state '{node.Value}' (LISTEN, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT, CLOSED)");

    // ----- Scalars -----

    private TimeSpan Duration(YamlScalarNode node)
    {
        string text = Text(node);
        if (double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double seconds)) return TimeSpan.FromSeconds(seconds);
        if (DurationText.TryParse(text, out TimeSpan duration)) return duration;
        throw Error(node, $"'{text}' is not a duration (seconds, or 200ms, 1.5s, 2m, 2h)");
    }

    private long Rate(YamlScalarNode node)
    {
        Match m = RateText().Match(Text(node));
        if (!m.Success) throw Error(node, $"'{node.Value}' is not a rate (e.g. 100Mbit, 1Gbit, 10kbit)");
        double value = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        double scale = m.Groups[2].Value.ToLowerInvariant() switch { "k" => 1e3, "m" => 1e6, "g" => 1e9, _ => 1 };
        return (long)(value * scale);
    }

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*([kKmMgG]?)bit(?:/s)?$")]
    private static partial Regex RateText();

    private int Integer(YamlScalarNode node, int min, int max, YamlNode? at = null)
    {
        if (!int.TryParse(Text(node), NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            throw Error(at ?? node, $"'{node.Value}' is not a whole number in {min}..{max}");
        return value;
    }

    private bool Boolean(YamlScalarNode node) => Text(node) switch
    {
        "true" or "on" or "yes" or "1" => true,
        "false" or "off" or "no" or "0" => false,
        var other => throw Error(node, $"'{other}' is not on/off"),
    };

    private static string Text(YamlScalarNode node) => node.Value ?? "";

    private YamlScalarNode Scalar(YamlNode node) =>
        node as YamlScalarNode ?? throw Error(node, "expected a single value here");

    private T Required<T>(YamlMappingNode map, string key) where T : YamlNode =>
        Optional<T>(map, key) ?? throw Error(map, $"missing '{key}'");

    private T? Optional<T>(YamlMappingNode map, string key) where T : YamlNode
    {
        if (!map.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? node)) return null;
        return node as T ?? throw Error(node, $"'{key}' has the wrong form here ({Describe<T>()} expected)");
    }

    private static string Describe<T>() =>
        typeof(T) == typeof(YamlScalarNode) ? "a single value" : typeof(T) == typeof(YamlSequenceNode) ? "a list" : "a mapping";

    private List<T> ReadList<T>(YamlMappingNode map, string key, Func<YamlNode, T> read) =>
        Optional<YamlSequenceNode>(map, key)?.Children.Select(read).ToList() ?? [];

    private void CheckKeys(YamlMappingNode map, IReadOnlyCollection<string> allowed, string what)
    {
        foreach (YamlNode key in map.Children.Keys)
        {
            string name = (key as YamlScalarNode)?.Value ?? "";
            if (allowed.Contains(name)) continue;
            string? near = allowed.MinBy(a => Distance(a, name));
            throw Error(key, $"unknown key '{name}' in {what}" + (near is not null && Distance(near, name) <= 3 ? $" (did you mean '{near}'?)" : $" (allowed: {string.Join(", ", allowed)})"));
        }
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    private static int Line(YamlNode node) => (int)node.Start.Line;

    private ScenarioException Error(YamlNode node, string message) => new(_file, Line(node), message);
}
