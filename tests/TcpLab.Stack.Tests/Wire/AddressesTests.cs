using TcpLab.Stack.Wire;
using static TcpLab.Stack.Tests.Wire.WireFrames;

namespace TcpLab.Stack.Tests.Wire;

public class AddressesTests
{
    [Fact]
    public void Mac_address_round_trips_through_bytes_and_text() =>
        Holds(AnyMac, mac =>
        {
            var bytes = new byte[MacAddress.Length];
            mac.Write(bytes);
            Assert.Equal(mac, MacAddress.Read(bytes));
            Assert.Equal(mac, MacAddress.Parse(mac.ToString()));
            Assert.Equal(string.Join(":", bytes.Select(b => b.ToString("x2"))), mac.ToString());
        }, mac => mac.ToString());

    [Fact]
    public void Ipv4_address_round_trips_through_bytes_and_text() =>
        Holds(AnyIpv4, ip =>
        {
            var bytes = new byte[Ipv4Address.Length];
            ip.Write(bytes);
            Assert.Equal(ip, Ipv4Address.Read(bytes));
            Assert.Equal(ip, Ipv4Address.Parse(ip.ToString()));
            Assert.Equal(string.Join(".", bytes), ip.ToString());
        }, ip => ip.ToString());

    [Theory]
    [InlineData("ff:ff:ff:ff:ff:ff", true, true, true)]
    [InlineData("01:00:5e:00:00:01", false, true, false)] // IPv4 multicast MAC: I/G bit set
    [InlineData("02:00:00:00:fa:01", false, false, true)] // the lab's locally administered MACs
    [InlineData("00:1b:21:3a:4f:10", false, false, false)]
    public void Mac_address_kind_comes_from_the_first_octets_low_bits(string text, bool broadcast, bool multicast, bool local)
    {
        MacAddress mac = MacAddress.Parse(text);
        Assert.Equal((broadcast, multicast, local), (mac.IsBroadcast, mac.IsMulticast, mac.IsLocallyAdministered));
    }

    [Theory]
    [InlineData("")]
    [InlineData("02:00:00:00:fa")]
    [InlineData("02:00:00:00:fa:01:02")]
    [InlineData("02:00:00:00:fa:1g")]
    [InlineData("02:00:00:00:fa:001")]
    public void Mac_address_text_that_is_not_six_hex_octets_is_refused(string text) =>
        Assert.False(MacAddress.TryParse(text, out _));

    [Theory]
    [InlineData("10.77.250")]
    [InlineData("10.77.250.256")]
    [InlineData("10.77.250.-1")]
    [InlineData("10.77.250.1.5")]
    [InlineData("10.77..1")]
    [InlineData(" 10.77.250.1")]
    public void Ipv4_text_that_is_not_four_decimal_octets_is_refused(string text) =>
        Assert.False(Ipv4Address.TryParse(text, out _));

    [Theory]
    [InlineData("10.77.250.2/24", "10.77.250.0", "10.77.250.255", "10.77.250.200", "10.77.251.1")]
    [InlineData("10.77.250.2/32", "10.77.250.2", "10.77.250.2", "10.77.250.2", "10.77.250.3")]
    [InlineData("192.168.7.9/20", "192.168.0.0", "192.168.15.255", "192.168.15.1", "192.168.16.0")]
    [InlineData("10.0.0.1/0", "0.0.0.0", "255.255.255.255", "203.0.113.9", null)]
    public void Cidr_network_broadcast_and_membership(string cidr, string network, string broadcast, string inside, string? outside)
    {
        Ipv4Cidr c = Ipv4Cidr.Parse(cidr);
        Assert.Equal(cidr, c.ToString());
        Assert.Equal(network, c.Network.ToString());
        Assert.Equal(broadcast, c.DirectedBroadcast.ToString());
        Assert.True(c.Contains(Ipv4Address.Parse(inside)));
        if (outside is not null) Assert.False(c.Contains(Ipv4Address.Parse(outside)));
    }

    [Theory]
    [InlineData("10.77.250.2")]
    [InlineData("10.77.250.2/33")]
    [InlineData("10.77.250.2/")]
    [InlineData("10.77.250.2/+8")]
    public void Cidr_text_without_a_prefix_of_0_to_32_is_refused(string text) =>
        Assert.False(Ipv4Cidr.TryParse(text, out _));
}
