using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Link;

/// <summary>The text and map forms of fault rules: what they read, how they print, what they say when wrong.</summary>
public class FaultRuleTests
{
    [Theory]
    [InlineData("drop dir=egress tcp=S nth=2")]
    [InlineData("drop from=10.0.0.1 tcp=+S count=3")]
    [InlineData("delay 200ms to=10.0.0.2:80 tcp=P.")]
    [InlineData("duplicate 1 tcp=. p=0.1")]
    [InlineData("reorder 2 tcp=P.")]
    [InlineData("corrupt tcp=P. nth=1")]
    [InlineData("drop proto=arp")]
    [InlineData("drop after=1s until=5s p=0.05")]
    [InlineData("reorder 1 timeout=50ms dir=ingress from=*:80")]
    [InlineData("corrupt at=8 proto=tcp")]
    [InlineData("delay 1.5s len=0 seq=1000..2459")]
    [InlineData("delay 2m seq=4294967000..1000")]
    [InlineData("drop tcp=none len=1.. every=3 name=\"client SYN loss\"")]
    [InlineData("drop name='say \"hi\"'")]
    [InlineData("delay 1000.5ms until=250us")]
    public void Canonical_text_prints_back_exactly(string text)
    {
        FaultRule rule = FaultRule.Parse(text);

        Assert.Equal(text, rule.ToString());
        Assert.Equal(rule, FaultRule.Parse(rule.ToString()));
    }

    [Theory]
    [InlineData("duplicate", "duplicate 1")]
    [InlineData("reorder", "reorder 1")]
    [InlineData("reorder 1 timeout=100ms", "reorder 1")]
    [InlineData("drop tcp=.S", "drop tcp=S.")]
    [InlineData("delay 1500ms", "delay 1.5s")]
    [InlineData("delay 0.2s", "delay 200ms")]
    [InlineData("delay 120s", "delay 2m")]
    [InlineData("drop until=90s", "drop until=90s")]
    [InlineData("  drop   nth=2\tdir=egress ", "drop dir=egress nth=2")]
    [InlineData("drop p=1 dir=both proto=any", "drop")]
    [InlineData("drop name='client SYN loss'", "drop name=\"client SYN loss\"")]
    public void Other_spellings_print_in_canonical_form(string text, string canonical)
    {
        FaultRule rule = FaultRule.Parse(text);

        Assert.Equal(canonical, rule.ToString());
        Assert.Equal(rule, FaultRule.Parse(canonical));
    }

    [Fact]
    public void Reads_each_condition_into_its_property()
    {
        FaultRule rule = FaultRule.Parse("delay 200ms dir=ingress from=10.0.0.2:80 to=*:40000 tcp=+S. len=0 seq=7.. nth=2 count=1 after=1s until=1.5s p=0.25 name=slow");

        Assert.Equal(
            new FaultRule(new DelayAction(TimeSpan.FromMilliseconds(200)))
            {
                Direction = FaultDirection.Ingress,
                From = new FaultEndpoint(Ipv4Address.Parse("10.0.0.2"), 80),
                To = new FaultEndpoint(null, 40000),
                Flags = new TcpFlagMatch(TcpFlags.Syn | TcpFlags.Ack, ContainsAll: true),
                PayloadLength = new NumberRange(0, 0),
                Sequence = new NumberRange(7, uint.MaxValue),
                Nth = 2,
                Count = 1,
                After = Instant.FromSeconds(1),
                Until = Instant.FromMilliseconds(1500),
                Probability = 0.25,
                Name = "slow",
            },
            rule);
        Assert.Equal("slow", rule.Label);
        Assert.Equal("drop tcp=S", FaultRule.Parse("drop tcp=S").Label);
    }

    [Fact]
    public void A_map_with_the_same_keys_reads_to_the_same_rule()
    {
        var map = new Dictionary<string, string>
        {
            ["action"] = "delay 200ms",
            ["to"] = "10.0.0.2:80",
            ["tcp"] = "P.",
            ["nth"] = "1",
            ["name"] = "slow data",
        };

        Assert.Equal(FaultRule.Parse("delay 200ms to=10.0.0.2:80 tcp=P. nth=1 name=\"slow data\""), FaultRule.FromDictionary(map));
        Assert.Equal(FaultRule.Parse("reorder 2 timeout=1s"),
            FaultRule.FromDictionary(new Dictionary<string, string> { ["action"] = "reorder 2", ["timeout"] = "1s" }));
    }

    [Theory]
    [InlineData("", "'': expected an action: drop, delay 200ms, duplicate 1, reorder 1 or corrupt")]
    [InlineData("dorp tcp=S", "'dorp': expected an action: drop, delay 200ms, duplicate 1, reorder 1 or corrupt")]
    [InlineData("delay", "'delay': expected the delay after it, such as delay 200ms")]
    [InlineData("delay 200 tcp=S", "'delay 200': expected a duration with a unit: ns, us, ms, s or m, such as 200ms or 1.5s")]
    [InlineData("delay 50ns", "'delay 50ns': expected a whole number of 100 ns, the finest a delay can be")]
    [InlineData("delay 0ms", "'delay 0ms': expected a positive delay, such as delay 200ms")]
    [InlineData("drop 2", "'drop 2': drop takes no argument; conditions are key=value, such as tcp=S")]
    [InlineData("duplicate 0", "'duplicate 0': expected 1 to 100 copies, such as duplicate 1")]
    [InlineData("reorder -1", "'reorder -1': expected a whole number")]
    [InlineData("drop nth=2 tcp", "'tcp': expected key=value, such as tcp=S or nth=2")]
    [InlineData("drop colour=red", "'colour=red': unknown key 'colour'; expected one of dir, proto, from, to, tcp, len, seq, nth, every, count, after, until, p, name, timeout (reorder), at (corrupt)")]
    [InlineData("drop dir=up", "'dir=up': expected egress, ingress or both")]
    [InlineData("drop proto=udp", "'proto=udp': expected tcp, icmp, arp or any")]
    [InlineData("drop tcp=SX", "'tcp=SX': 'X' is not a tcpdump flag; expected letters of F S R P U E W and '.' for ACK")]
    [InlineData("drop tcp=SS", "'tcp=SS': flag 'S' is given twice")]
    [InlineData("drop tcp=+", "'tcp=+': expected tcpdump flag letters (F S R P U E W, '.' for ACK), such as S, S., ., P. or +S")]
    [InlineData("drop from=10.0.0", "'from=10.0.0': expected an address, address:port or *:port, such as 10.0.0.1:80")]
    [InlineData("drop to=*", "'to=*': expected an address, address:port or *:port, such as 10.0.0.1:80")]
    [InlineData("drop proto=icmp tcp=S", "'tcp=S': matching TCP flags needs TCP, but the rule says proto=icmp")]
    [InlineData("drop proto=arp from=*:80", "'from=*:80': a port needs TCP, but the rule says proto=arp")]
    [InlineData("drop len=100..50", "'len=100..50': expected a length range whose first number is not above its last")]
    [InlineData("drop seq=x", "'seq=x': expected a sequence number or range, such as 1000 or 1000..2459")]
    [InlineData("drop nth=0", "'nth=0': expected a match number of 1 or more")]
    [InlineData("drop nth=two", "'nth=two': expected a whole number")]
    [InlineData("drop nth=1 nth=2", "'nth=2': nth is given twice")]
    [InlineData("drop nth=2 every=3", "'every=3': nth and every exclude each other: nth takes one match, every takes each k-th")]
    [InlineData("drop count=0", "'count=0': expected a number of frames of 1 or more")]
    [InlineData("drop after=5s until=1s", "'until=1s': expected a time later than after=5s")]
    [InlineData("drop until=0s", "'until=0s': expected a time later than 0s")]
    [InlineData("drop after=soon", "'after=soon': expected a duration with a unit: ns, us, ms, s or m, such as 200ms or 1.5s")]
    [InlineData("drop p=1.5", "'p=1.5': expected a probability from 0 to 1, such as p=0.1")]
    [InlineData("drop p=-0.1", "'p=-0.1': expected a probability from 0 to 1, such as p=0.1")]
    [InlineData("drop timeout=1s", "'timeout=1s': timeout applies to reorder only")]
    [InlineData("delay 1s at=3", "'at=3': at applies to corrupt only")]
    [InlineData("reorder 2 timeout=0s", "'timeout=0s': expected a positive timeout, such as timeout=100ms")]
    [InlineData("drop name=\"open", "'name=\"open': the \" quote is not closed")]
    [InlineData("drop name=", "'name=': expected a non-empty name without both kinds of quote")]
    public void Errors_name_the_token_and_what_was_expected(string text, string message)
    {
        var error = Assert.Throws<FaultRuleFormatException>(() => FaultRule.Parse(text));

        Assert.Equal(message, error.Message);
        Assert.StartsWith($"'{error.Token}': ", message);
    }

    [Fact]
    public void Map_errors_name_the_entry_as_written_in_the_map()
    {
        Assert.Equal("'(no action)': expected an action: drop, delay 200ms, duplicate 1, reorder 1 or corrupt",
            Assert.Throws<FaultRuleFormatException>(() => FaultRule.FromDictionary(new Dictionary<string, string> { ["nth"] = "1" })).Message);
        Assert.Equal("'nth: 0': expected a match number of 1 or more",
            Assert.Throws<FaultRuleFormatException>(() => FaultRule.FromDictionary(new Dictionary<string, string> { ["action"] = "drop", ["nth"] = "0" })).Message);
        Assert.Equal("'action: delay 1 2': expected an action: drop, delay 200ms, duplicate 1, reorder 1 or corrupt",
            Assert.Throws<FaultRuleFormatException>(() => FaultRule.FromDictionary(new Dictionary<string, string> { ["action"] = "delay 1 2" })).Message);
    }

    [Fact]
    public void Rules_built_in_code_are_checked_by_the_same_rules_and_named_in_the_text_form()
    {
        Assert.Equal("'nth=0': expected a match number of 1 or more",
            Assert.Throws<FaultRuleFormatException>(() => new FaultRule(new DropAction()) { Nth = 0 }.Validate()).Message);
        Assert.Equal("'duplicate 0': expected 1 to 100 copies, such as duplicate 1",
            Assert.Throws<FaultRuleFormatException>(() => new FaultRule(new DuplicateAction(0)).Validate()).Message);
        Assert.Equal("'reorder 1 timeout=0s': expected a positive timeout, such as timeout=100ms",
            Assert.Throws<FaultRuleFormatException>(() => new FaultRule(new ReorderAction { Timeout = TimeSpan.Zero }).Validate()).Message);
        Assert.Equal("'p=2': expected a probability from 0 to 1, such as p=0.1",
            Assert.Throws<FaultRuleFormatException>(() => new FaultRule(new DropAction()) { Probability = 2 }.Validate()).Message);
    }

    [Fact]
    public void Flag_strings_read_as_tcpdump_prints_them()
    {
        Assert.Equal(new TcpFlagMatch(TcpFlags.Syn), TcpFlagMatch.Parse("S"));
        Assert.Equal(new TcpFlagMatch(TcpFlags.Fin | TcpFlags.Psh | TcpFlags.Ack), TcpFlagMatch.Parse("FP."));
        Assert.Equal(new TcpFlagMatch(TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr), TcpFlagMatch.Parse("SEW"));
        Assert.Equal(new TcpFlagMatch(TcpFlags.None), TcpFlagMatch.Parse("none"));
        Assert.Equal("+F", TcpFlagMatch.Parse("+F").ToString());
        Assert.Throws<FormatException>(() => TcpFlagMatch.Parse("+none"));
    }
}
