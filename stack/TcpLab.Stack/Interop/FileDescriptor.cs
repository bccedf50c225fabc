using System.Runtime.InteropServices;

namespace TcpLab.Stack.Interop;

/// <summary>
/// Owns one Linux file descriptor and closes it exactly once. Passing it to a
/// <see cref="LibC"/> call holds a reference for the call's duration, so a concurrent
/// <see cref="SafeHandle.Dispose()"/> cannot close (and the kernel cannot reuse) the number
/// while a read or write is still using it.
/// <para>-1 is the invalid value; 0 is a valid descriptor.</para>
/// </summary>
public sealed class FileDescriptor : SafeHandle
{
    /// <summary>An invalid descriptor.</summary>
    public FileDescriptor() : base(invalidHandleValue: -1, ownsHandle: true) { }

    /// <summary>Takes ownership of <paramref name="fd"/>.</summary>
    public FileDescriptor(int fd) : this() => SetHandle(fd);

    /// <summary>Wraps <paramref name="fd"/>; with <paramref name="ownsHandle"/> false it is never closed here (someone else owns it).</summary>
    public FileDescriptor(int fd, bool ownsHandle) : base(invalidHandleValue: -1, ownsHandle) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    /// <summary>The descriptor number (meaningful only while the handle is open).</summary>
    public int Number => (int)handle;

    protected override bool ReleaseHandle() => LibC.Close((int)handle) == 0;

    public override string ToString() => IsClosed ? "fd (closed)" : $"fd {Number}";
}
