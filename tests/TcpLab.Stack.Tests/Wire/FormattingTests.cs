using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Wire;

/// <summary>Text as tcpdump prints it (print-tcp.c), so our logs line up with a capture.</summary>
public class FormattingTests
{
    [Theory]
    [InlineData(TcpFlags.None, "none")]
    [InlineData(TcpFlags.Syn, "S")]
    [InlineData(TcpFlags.Syn | TcpFlags.Ack, "S.")]
    [InlineData(TcpFlags.Ack, ".")]
    [InlineData(TcpFlags.Psh | TcpFlags.Ack, "P.")]
    [InlineData(TcpFlags.Fin | TcpFlags.Ack, "F.")]
    [InlineData(TcpFlags.Fin | TcpFlags.Psh | TcpFlags.Ack, "FP.")]
    [InlineData(TcpFlags.Rst, "R")]
    [InlineData(TcpFlags.Rst | TcpFlags.Ack, "R.")]
    [InlineData(TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, "SEW")] // ECN-setup SYN
    [InlineData(TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Ece, "S.E")] // ECN-setup SYN-ACK: ACK prints before ECE
    [InlineData(TcpFlags.Ack | TcpFlags.Cwr, ".W")]
    [InlineData(TcpFlags.Urg | TcpFlags.Ack, ".U")]
    [InlineData((TcpFlags)0xFF, "FSRP.UEW")] // tcpdump's table order: F S R P . U E W
    public void Flags_print_in_tcpdumps_order(TcpFlags flags, string expected) =>
        Assert.Equal(expected, TcpHeader.FormatFlags(flags));

    [Fact]
    public void No_options_print_as_nothing() => Assert.Equal("", default(TcpOptions).ToString());

    [Fact]
    public void Syn_options_print_without_the_nops()
    {
        var o = new TcpOptions();
        o.SetMss(1460);
        o.SackPermitted = true;
        o.SetTimestamp(2473261749, 0);
        o.SetWindowScale(7);
        Assert.Equal("mss 1460,sackOK,TS val 2473261749 ecr 0,wscale 7", o.ToString());
    }

    [Fact]
    public void Sack_blocks_print_as_a_count_then_braced_edges()
    {
        var o = new TcpOptions();
        o.SetTimestamp(1, 2);
        o.AddSack(new SackBlock(1454644152, 1454645612));
        o.AddSack(new SackBlock(1454636852, 1454642692));
        Assert.Equal("TS val 1 ecr 2,sack 2 {1454644152:1454645612}{1454636852:1454642692}", o.ToString());
    }

    [Theory]
    [InlineData(FastOpenEncoding.Rfc7413, "", "tfo  cookiereq")]            // tcpdump prints two spaces here
    [InlineData(FastOpenEncoding.Rfc7413, "d7527c902de3c1df", "tfo  cookie d7527c902de3c1df")]
    [InlineData(FastOpenEncoding.Experimental, "", "exp-tfo cookiereq")]
    [InlineData(FastOpenEncoding.Experimental, "01020304", "exp-tfo cookie 01020304")]
    public void Fast_open_prints_as_tcpdump_does(FastOpenEncoding encoding, string cookieHex, string expected)
    {
        var o = new TcpOptions();
        o.SetFastOpenCookie(Convert.FromHexString(cookieHex), encoding);
        Assert.Equal(expected, o.ToString());
    }

    [Fact]
    public void Mss_and_window_scale_alone_print_alone()
    {
        var o = new TcpOptions();
        o.SetMss(536);
        Assert.Equal("mss 536", o.ToString());
        o = new TcpOptions();
        o.SetWindowScale(14);
        Assert.Equal("wscale 14", o.ToString());
    }
}
