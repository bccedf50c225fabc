using TcpLab.Stack.Time;

namespace TcpLab.Lab.Scenarios;

/// <summary>What runs a host's application steps: sockets of a managed stack, or of a Linux kernel.</summary>
internal interface IApplicationRunner
{
    void Execute(Step step);
}

/// <summary>One named application socket: it sends what it is given and does what it is told.</summary>
internal interface IScenarioSocket
{
    void Send(byte[] data);
    void Do(SocketAction action);
}

/// <summary>
/// The applications of one kind of host: listen and connect make named sockets, and the other
/// steps go to the socket they name. Times are counted from the run's origin.
/// </summary>
internal abstract class ApplicationRunner<TSocket>(EventLoop loop, Instant origin) : IApplicationRunner
    where TSocket : class, IScenarioSocket
{
    private readonly Dictionary<string, TSocket> _sockets = new();

    protected EventLoop Loop => loop;
    protected TimeSpan Now => loop.Now - origin;
    protected IEnumerable<TSocket> AllSockets => _sockets.Values;

    public void Execute(Step step)
    {
        switch (step)
        {
            case ListenStep listen:
                Listen(listen);
                break;
            case ConnectStep connect:
                Connect(connect);
                break;
            case SendStep send:
                Socket(send.Socket).Send(send.Data);
                break;
            case SocketStep action:
                Socket(action.Socket).Do(action.Action);
                break;
            default:
                throw new InvalidOperationException($"line {step.Line}: {GetType().Name} cannot run {step.GetType().Name}");
        }
    }

    protected abstract void Listen(ListenStep step);
    protected abstract void Connect(ConnectStep step);

    protected void Name(string name, TSocket socket) => _sockets[name] = socket;

    /// <summary>The name of the <paramref name="accepted"/>th connection a listener accepts: NAME, NAME2, NAME3, ...</summary>
    protected static string AcceptedName(string name, int accepted) => accepted == 1 ? name : $"{name}{accepted}";

    private TSocket Socket(string name) =>
        _sockets.TryGetValue(name, out TSocket? s) ? s
        : throw new InvalidOperationException($"socket '{name}' does not exist yet (its connect failed or was never accepted)");
}
