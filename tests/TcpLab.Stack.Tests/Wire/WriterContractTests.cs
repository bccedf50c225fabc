using FsCheck.Fluent;
using TcpLab.Stack.Wire;
using static TcpLab.Stack.Tests.Wire.WireFrames;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>Writers and builders refuse what the wire cannot carry instead of writing wrong bytes.</summary>
public class WriterContractTests
{
    [Theory]
    [InlineData(4)]
    [InlineData(-8)]
    [InlineData(65536)] // 8192 units: one past the 13-bit field, would land in the MF flag
    [InlineData(1_000_000)]
    public void Ipv4_fragment_offset_must_be_a_multiple_of_8_that_fits_13_bits(int offset)
    {
        var header = new Ipv4Header(ClientIp, ServerIp, IpProtocol.Tcp, 0, DontFragment: false, FragmentOffset: offset);
        Assert.Throws<ArgumentOutOfRangeException>(() => header.Write(new byte[Ipv4Header.Length]));
    }

    [Fact]
    public void Ipv4_largest_fragment_offset_is_written_without_touching_the_flags()
    {
        var header = new Ipv4Header(ClientIp, ServerIp, IpProtocol.Tcp, 8, DontFragment: false, FragmentOffset: 0x1FFF * 8);
        var datagram = new byte[Ipv4Header.Length + 8];
        header.Write(datagram);
        Assert.Equal([0x1F, 0xFF], datagram[6..8]);
        Assert.Equal(WireError.None, Ipv4Packet.TryParse(datagram, out Ipv4Packet ip));
        Assert.Equal((false, false, 0x1FFF * 8), (ip.DontFragment, ip.MoreFragments, ip.FragmentOffset));
    }

    [Theory]
    [InlineData(-1)]  // would write a total length of 19
    [InlineData(-20)]
    [InlineData(65536 - 20)]
    public void Ipv4_payload_must_fit_the_16_bit_total_length(int payloadLength)
    {
        var header = new Ipv4Header(ClientIp, ServerIp, IpProtocol.Tcp, payloadLength);
        Assert.Throws<ArgumentOutOfRangeException>(() => header.Write(new byte[Ipv4Header.Length]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(15)]
    [InlineData(17)]
    public void Fast_open_cookie_must_be_empty_or_4_to_16_even_bytes(int length)
    {
        var o = new TcpOptions();
        Assert.Throws<ArgumentException>(() => o.SetFastOpenCookie(new byte[length]));
        Assert.Equal(FastOpenEncoding.None, o.FastOpen);
    }

    [Fact]
    public void At_most_four_sack_blocks()
    {
        var o = new TcpOptions();
        for (uint i = 0; i < TcpOptions.MaxSackBlocks; i++) o.AddSack(new SackBlock(i, i + 1));
        Assert.Throws<InvalidOperationException>(() => o.AddSack(new SackBlock(9, 10)));
    }

    [Fact]
    public void Tcp_header_with_more_than_40_option_bytes_is_refused()
    {
        TcpHeader h = LinuxSynHeader();            // 20 option bytes
        h.Options.SetFastOpenCookie(new byte[16]); // + 20 = 40: still fits
        Assert.Equal(60, h.Write(new byte[60]));
        h.Options.AddSack(new SackBlock(1, 2));    // + 12 = 52
        Assert.Throws<InvalidOperationException>(() => h.Write(new byte[80]));
    }

    [Fact]
    public void Options_equal_by_their_present_fields_have_equal_hash_codes() =>
        // Values left behind in absent fields (HasMss false but Mss set, ...) must not matter.
        Holds(Together(ValidTcpOptions, AnyUInt16, AnyUInt32), t =>
        {
            var (options, junk16, junk32) = t;
            TcpOptions other = options;
            if (!other.HasMss) other.Mss = junk16;
            if (!other.HasWindowScale) other.WindowScale = (byte)junk16;
            if (!other.HasTimestamp) { other.TsVal = junk32; other.TsEcr = ~junk32; }

            Assert.True(options.Equals(other));
            Assert.Equal(options.GetHashCode(), other.GetHashCode());
        }, t => Show(t.Item1));

    [Fact]
    public void Options_differing_in_any_field_are_not_equal() =>
        Holds(Gen.Zip(ValidTcpOptions, ValidTcpOptions), t =>
            Assert.Equal(Fields(t.Item1) == Fields(t.Item2), t.Item1.Equals(t.Item2)),
            t => $"{Show(t.Item1)} vs {Show(t.Item2)}");
}
