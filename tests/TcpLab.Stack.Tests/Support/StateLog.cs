using TcpLab.Stack.Tcp;

namespace TcpLab.Stack.Tests.Support;

/// <summary>Every state change one stack reports, with its virtual time.</summary>
public sealed class StateLog
{
    public StateLog(NetworkStack stack) => stack.Tcp.StateChanged += Changes.Add;

    public List<TcpStateChange> Changes { get; } = new();

    /// <summary>The states one tuple went through, e.g. "SYN_SENT ESTABLISHED FIN_WAIT1 ...".</summary>
    public string Path(FourTuple tuple) =>
        string.Join(" ", Changes.Where(c => c.Tuple == tuple).Select(c => c.To.ToNetstatName()));

    /// <summary>When the tuple entered <paramref name="state"/> (the last time), in seconds.</summary>
    public double When(FourTuple tuple, TcpState state) =>
        Changes.Last(c => c.Tuple == tuple && c.To == state).At.TotalSeconds;
}
