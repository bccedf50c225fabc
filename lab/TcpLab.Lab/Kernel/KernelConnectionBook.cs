using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Kernel;

/// <summary>
/// The bookkeeping behind <see cref="KernelStateTracker"/>: turns the state changes the kernel
/// traces (sock:inet_sock_set_state, addresses but not which socket) into this run's
/// connections, each with an id, and leaves out what belongs to another namespace.
/// <para>
/// Three things the tracepoint does not say are filled in here: a connecting socket's port
/// (held until the next change names it), the timewait entry that takes over a closing socket
/// (from a sock_diag lookup the caller passes in, then from its periodic dumps), and whose
/// socket a change is. The tracepoint is global, so a change is this run's only if the run saw
/// the connection begin and the change starts from the state the connection is in: a previous
/// run's namespace on the same addresses, torn down in the background, closes its sockets with
/// the same four-tuple tens of seconds later.
/// </para>
/// </summary>
internal sealed class KernelConnectionBook(Action<KernelStateChange> changed)
{
    private readonly Dictionary<(string Host, FourTuple Tuple), (long Id, TcpState State)> _current = new();
    private readonly Dictionary<(string Host, Ipv4Address Local, Ipv4Address Remote, ushort RemotePort), Instant> _connecting = new();
    private readonly Dictionary<(string Host, FourTuple Tuple), (long Id, TcpState State)> _timewait = new();
    private long _lastId;

    /// <summary>Some connection is held by a timewait entry, which only sock_diag dumps can follow.</summary>
    public bool HasTimewait => _timewait.Count > 0;

    /// <summary>The hosts whose timewait entries need a dump.</summary>
    public IEnumerable<string> TimewaitHosts => _timewait.Keys.Select(k => k.Host).Distinct();

    /// <summary>
    /// One traced change. <paramref name="timewaitSubstate"/> looks the tuple up with sock_diag
    /// (TIME_WAIT, FIN_WAIT2 or null), asked only when a closing socket goes to CLOSE.
    /// </summary>
    public void OnChange(Instant at, string host, FourTuple tuple, TcpState from, TcpState to, Func<TcpState?> timewaitSubstate)
    {
        if (from == TcpState.Listen && to == TcpState.Closed || to == TcpState.Listen) return;   // listeners are not connections
        var connecting = (host, tuple.LocalAddress, tuple.RemoteAddress, tuple.RemotePort);
        if (tuple.LocalPort == 0)
        {
            // tcp_v4_connect enters SYN_SENT before inet_hash_connect picks the port; a failure there closes it portless.
            if (to == TcpState.SynSent) _connecting[connecting] = at;
            else _connecting.Remove(connecting);
            return;
        }
        if (from == TcpState.SynSent && _connecting.Remove(connecting, out Instant connectAt))
        {
            Emit(connectAt, host, tuple, TcpState.Closed, TcpState.SynSent);
        }
        if (to == TcpState.Closed && from is TcpState.FinWait1 or TcpState.FinWait2 or TcpState.Closing
            && timewaitSubstate() is { } substate)
        {
            // tcp_time_wait(): the socket is gone, a timewait entry holds the connection on.
            if (Emit(at, host, tuple, from, substate) is { } id) _timewait[(host, tuple)] = (id, substate);
            return;
        }
        Emit(at, host, tuple, from, to);
    }

    /// <summary>A sock_diag dump of <paramref name="host"/>'s sockets: timewait entries that are gone are closed, a FIN_WAIT2 that got its FIN is TIME_WAIT.</summary>
    public void OnTimewaitDump(Instant now, string host, IReadOnlyDictionary<FourTuple, TcpState> present)
    {
        foreach (var (key, entry) in _timewait.Where(e => e.Key.Host == host).ToList())
        {
            TcpState state = present.TryGetValue(key.Tuple, out TcpState s) && s is TcpState.TimeWait or TcpState.FinWait2 ? s : TcpState.Closed;
            if (state == entry.State) continue;
            // An orphaned FIN_WAIT2 that got its FIN is TIME_WAIT now (tcp_timewait_state_process).
            if (state == TcpState.Closed) _timewait.Remove(key);
            else _timewait[key] = (entry.Id, state);
            _current[key] = (entry.Id, state);
            changed(new KernelStateChange(now, host, key.Tuple, entry.Id, entry.State, state));
        }
    }

    private long? Emit(Instant at, string host, FourTuple tuple, TcpState from, TcpState to)
    {
        var key = (host, tuple);
        // Kernels before 6.x do not trace a request's LISTEN -> SYN_RECV: the child's first change is its birth there.
        bool born = from is TcpState.Closed or TcpState.Listen || (from == TcpState.SynReceived && !_current.ContainsKey(key));
        if (!born && (!_current.TryGetValue(key, out var known) || known.State != from))
            return null;   // another namespace's socket with these addresses and ports
        long id;
        if (born)
        {
            // A new connection on this tuple; a timewait entry still holding it was taken over (tcp_twsk_unique).
            if (_timewait.Remove(key, out var old)) changed(new KernelStateChange(at, host, tuple, old.Id, old.State, TcpState.Closed));
            id = ++_lastId;
        }
        else
        {
            id = _current[key].Id;
        }
        _current[key] = (id, to);
        if (from != to) changed(new KernelStateChange(at, host, tuple, id, from, to));
        return id;
    }
}
