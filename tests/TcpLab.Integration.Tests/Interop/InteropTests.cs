using TcpLab.Stack;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TcpLab.Stack.Buffers;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Link;

namespace TcpLab.Integration.Tests.Interop;

public class InteropTests
{
    [Fact]
    public void Structures_have_the_kernel_layouts()
    {
        // x86_64 <sys/epoll.h>: __EPOLL_PACKED.
        Assert.Equal(12, Unsafe.SizeOf<EpollEvent>());
        Assert.Equal(4, (int)Marshal.OffsetOf<EpollEvent>(nameof(EpollEvent.Data)));
        Assert.Equal(40, Unsafe.SizeOf<IfReq>());
        Assert.Equal(16, (int)Marshal.OffsetOf<IfReq>(nameof(IfReq.Flags)));
        Assert.Equal(20, Unsafe.SizeOf<SockAddrLl>());
        Assert.Equal(4, (int)Marshal.OffsetOf<SockAddrLl>(nameof(SockAddrLl.InterfaceIndex)));
        Assert.Equal(12, (int)Marshal.OffsetOf<SockAddrLl>("Address"));
        Assert.Equal(16, Unsafe.SizeOf<PacketMreq>());
        Assert.Equal(16, Unsafe.SizeOf<Timespec>());
    }

    [Fact]
    public void Ifreq_carries_the_name_nul_terminated_and_reads_it_back()
    {
        IfReq request = IfReq.ForName("abcdefghijklmno"); // 15 characters, the most there is room for
        Assert.Equal("abcdefghijklmno", request.GetName());
        Assert.Throws<ArgumentException>(() => IfReq.ForName("abcdefghijklmnop"));
    }

    [Theory]
    [InlineData("tl0", true)]
    [InlineData("veth-a.100", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("a/b", false)]
    [InlineData("a:b", false)]
    [InlineData("..", false)]
    [InlineData("sixteen-chars-xx", false)]
    public void Device_names_follow_dev_valid_name(string name, bool valid) => Assert.Equal(valid, NetDeviceName.IsValid(name));

    [Theory]
    [InlineData(-1L, -1)]
    [InlineData(0L, 0)]
    [InlineData(1L, 1)]
    [InlineData(999_999L, 1)]
    [InlineData(1_000_000L, 1)]
    [InlineData(1_000_001L, 2)]
    [InlineData(long.MaxValue, int.MaxValue)]
    public void The_epoll_wait_fallback_rounds_timeouts_up_to_whole_milliseconds(long nanoseconds, int milliseconds) =>
        Assert.Equal(milliseconds, Epoll.ToMillisecondsRoundedUp(nanoseconds));

    [Fact]
    public void Errno_prints_its_kernel_name_and_strerror_text()
    {
        Assert.Equal("EPERM (Operation not permitted)", Errno.EPERM.WithDescription());
        Assert.Equal("Connection refused", Errno.ECONNREFUSED.Describe());
        var error = new ErrnoException("TUNSETIFF tl0", Errno.EPERM);
        Assert.Equal("TUNSETIFF tl0: EPERM (Operation not permitted)", error.Message);
    }

    [Fact]
    public void A_failed_call_reports_its_errno()
    {
        using FileDescriptor fd = LibC.Open("/nonexistent/tcplab", LibC.O_RDONLY | LibC.O_CLOEXEC);
        Assert.True(fd.IsInvalid);
        ErrnoException error = SystemError.LastAsException("open /nonexistent/tcplab");
        Assert.Equal(Errno.ENOENT, error.Errno);
        Assert.StartsWith("open /nonexistent/tcplab: ENOENT (", error.Message);
    }

    [Fact]
    public void Descriptor_zero_is_valid_and_minus_one_is_not()
    {
        var stdin = new FileDescriptor(0);
        Assert.False(stdin.IsInvalid);
        stdin.SetHandleAsInvalid(); // do not close the test host's stdin
        Assert.True(new FileDescriptor().IsInvalid);
    }

    [Fact]
    public void Virtio_net_header_is_little_endian_in_the_kernel_field_order()
    {
        var offload = new OffloadInfo
        {
            NeedsChecksum = true,
            Gso = GsoKind.TcpV4,
            HeaderLength = 0x0102,
            GsoSize = 0x0304,
            ChecksumStart = 0x0506,
            ChecksumOffset = 0x0708,
        };
        Span<byte> header = stackalloc byte[VirtioNetHeader.Size];
        header.Fill(0xEE);
        VirtioNetHeader.Write(header, offload);
        Assert.Equal(new byte[] { 1, 1, 0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 0x08, 0x07, 0, 0 }, header.ToArray());

        Assert.True(VirtioNetHeader.TryRead(header, out OffloadInfo read));
        Assert.Equal(offload, read);
    }

    [Fact]
    public void Virtio_net_header_reports_data_valid_and_refuses_gso_types_not_negotiated()
    {
        byte[] dataValid = [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.True(VirtioNetHeader.TryRead(dataValid, out OffloadInfo read));
        Assert.True(read.ChecksumVerified);
        Assert.False(read.NeedsChecksum);

        byte[] tcpV6 = [0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // VIRTIO_NET_HDR_GSO_TCPV6
        Assert.False(VirtioNetHeader.TryRead(tcpV6, out _));
    }
}
