namespace TcpLab.Stack.Tcp;

/// <summary>
/// Anything the established hash holds for a 4-tuple (Linux's sock_common): a full
/// <see cref="TcpConnection"/>, a half-open <see cref="RequestSocket"/> or a
/// <see cref="TimeWaitSocket"/>. One lookup per segment finds whichever it is.
/// </summary>
public abstract class TcpFlow(FourTuple tuple)
{
    public FourTuple Tuple { get; protected set; } = tuple;

    /// <summary>
    /// One connection's serial number on this host, from its first SYN to its last state: the
    /// request, the connection and its TIME_WAIT share it. The tuple alone is not enough to
    /// tell connections apart, since TIME_WAIT reuse gives a tuple a second connection.
    /// </summary>
    public long ConnectionId { get; init; }

    /// <summary>The state `ss` shows for this entry.</summary>
    public abstract TcpState State { get; }
}
