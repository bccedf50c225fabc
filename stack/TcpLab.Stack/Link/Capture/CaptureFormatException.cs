namespace TcpLab.Stack.Link.Capture;

/// <summary>
/// A capture file that is not well-formed pcap or pcapng: names what was being read, where it
/// starts in the file and what is wrong with it, e.g. "block at offset 1234: total length 7 &lt; 12".
/// </summary>
public sealed class CaptureFormatException : Exception
{
    public CaptureFormatException(string subject, long offset, string reason)
        : base($"{subject} at offset {offset}: {reason}")
    {
        Subject = subject;
        Offset = offset;
        Reason = reason;
    }

    /// <summary>What was being read: "file header", "block", "record", "option".</summary>
    public string Subject { get; }

    /// <summary>Byte offset in the file where <see cref="Subject"/> starts.</summary>
    public long Offset { get; }

    public string Reason { get; }
}
