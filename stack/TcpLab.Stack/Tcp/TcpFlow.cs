namespace TcpLab.Stack.Tcp;

/// <summary>
/// Anything the established hash holds for a 4-tuple (Linux's sock_common): a full
/// <see cref="TcpConnection"/>, a half-open <see cref="RequestSocket"/> or a
/// <see cref="TimeWaitSocket"/>. One lookup per segment finds whichever it is.
/// </summary>
public abstract class TcpFlow(FourTuple tuple)
{
    public FourTuple Tuple { get; protected set; } = tuple;

    /// <summary>The state `ss` shows for this entry.</summary>
    public abstract TcpState State { get; }
}
