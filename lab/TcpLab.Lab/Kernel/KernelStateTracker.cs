using System.Globalization;
using System.Text;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Lab.Kernel;

/// <summary>A connection of a kernel host changed state (as <see cref="TcpStateChange"/> is for a managed one).</summary>
public readonly record struct KernelStateChange(Instant At, string Host, FourTuple Tuple, long ConnectionId, TcpState From, TcpState To);

/// <summary>
/// Follows the TCP states of the kernel hosts of a run, as the managed stack reports its own.
/// <para>
/// The kernel announces each change of a full socket (and of a request, LISTEN -> SYN_RECV) on
/// the tracepoint sock:inet_sock_set_state; the tracker reads it from a tracefs instance of its
/// own, timestamped with CLOCK_MONOTONIC like the lab's loop, and looks up with sock_diag the
/// timewait entries that have no tracepoint. <see cref="KernelConnectionBook"/> makes the run's
/// connections of it.
/// </para>
/// <para>
/// The tracepoint is global, not per namespace: events are told apart by the hosts' addresses,
/// and runs against the kernel hold <see cref="KernelRunLock"/> so that two runs with the same
/// addresses never overlap.
/// </para>
/// </summary>
public sealed class KernelStateTracker : IDisposable
{
    private const string TraceFs = "/sys/kernel/tracing";
    private static readonly TimeSpan TimewaitPollInterval = TimeSpan.FromMilliseconds(100);
    private static int s_instances;

    private readonly RealTimeEventLoop _loop;
    private readonly Dictionary<Ipv4Address, (string Name, InetDiag Diag)> _hosts = new();
    private readonly string _instance;
    private readonly FileDescriptor _pipe;
    private readonly byte[] _readBuffer = new byte[64 * 1024];
    private readonly StringBuilder _partialLine = new();
    private readonly KernelConnectionBook _book;
    private readonly Timer _pollTimer;
    private bool _disposed;

    private KernelStateTracker(RealTimeEventLoop loop, IEnumerable<KernelHost> hosts, Func<KernelHost, string> nameOf,
                               Action<KernelStateChange> changed, string instance, FileDescriptor pipe)
    {
        _loop = loop;
        _book = new KernelConnectionBook(changed);
        _instance = instance;
        _pipe = pipe;
        foreach (KernelHost host in hosts) _hosts[host.Address] = (nameOf(host), InetDiag.OpenInNamespace(host.Namespace.Path));
        _pollTimer = loop.CreateTimer(PollTimewait);
    }

    /// <summary>Why the tracker cannot run here, or null when it can (tracefs and the tracepoint exist, or tracefs can be mounted).</summary>
    public static string? Unavailable()
    {
        if (!Directory.Exists(Path.Combine(TraceFs, "instances")) && !MountTraceFs())
            return $"tracefs is not mounted at {TraceFs} and could not be mounted (needs root)";
        return File.Exists(Path.Combine(TraceFs, "events/sock/inet_sock_set_state/enable"))
            ? null
            : "the kernel has no sock:inet_sock_set_state tracepoint";
    }

    /// <summary>Starts tracing for <paramref name="hosts"/>; <paramref name="changed"/> is called on the loop.</summary>
    public static KernelStateTracker Start(RealTimeEventLoop loop, IReadOnlyCollection<KernelHost> hosts, Func<KernelHost, string> nameOf,
                                           Action<KernelStateChange> changed)
    {
        if (Unavailable() is { } why) throw new InvalidOperationException("cannot follow the kernel's TCP states: " + why);
        RemoveStaleInstances();
        string instance = Path.Combine(TraceFs, "instances", $"tcplab-{Environment.ProcessId}-{Interlocked.Increment(ref s_instances)}");
        Directory.CreateDirectory(instance);
        try
        {
            File.WriteAllText(Path.Combine(instance, "trace_clock"), "mono");
            string eventDir = Path.Combine(instance, "events/sock/inet_sock_set_state");
            File.WriteAllText(Path.Combine(eventDir, "filter"), "protocol == 6");
            File.WriteAllText(Path.Combine(eventDir, "enable"), "1");
            FileDescriptor pipe = LibC.Open(Path.Combine(instance, "trace_pipe"), LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
            if (pipe.IsInvalid) throw SystemError.LastAsException("open trace_pipe");
            var tracker = new KernelStateTracker(loop, hosts, nameOf, changed, instance, pipe);
            loop.Invoke(() => loop.RegisterReadable(pipe, tracker.ReadPipe));
            return tracker;
        }
        catch
        {
            RemoveInstance(instance);
            throw;
        }
    }

    // ----- Tracepoint -----

    private unsafe void ReadPipe()
    {
        while (true)
        {
            nint n;
            fixed (byte* p = _readBuffer) n = LibC.Read(_pipe, p, (nuint)_readBuffer.Length);
            if (n <= 0) return;   // EAGAIN: drained
            _partialLine.Append(Encoding.ASCII.GetString(_readBuffer, 0, (int)n));
            string text = _partialLine.ToString();
            int end = text.LastIndexOf('\n');
            if (end < 0) continue;
            _partialLine.Clear().Append(text, end + 1, text.Length - end - 1);
            foreach (string line in text[..end].Split('\n')) OnTraceLine(line);
        }
    }

    /// <summary>"ncat-2467 [000] .N... 3235.331214: inet_sock_set_state: family=AF_INET ... oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED"</summary>
    private void OnTraceLine(string line)
    {
        const string Marker = ": inet_sock_set_state: ";
        int marker = line.IndexOf(Marker, StringComparison.Ordinal);
        if (marker < 0) return;
        int stampStart = line.LastIndexOf(' ', marker - 1) + 1;
        if (!decimal.TryParse(line.AsSpan(stampStart, marker - stampStart), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal seconds))
            return;
        var fields = new Dictionary<string, string>();
        foreach (string pair in line[(marker + Marker.Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=');
            if (eq > 0) fields[pair[..eq]] = pair[(eq + 1)..];
        }
        if (fields.GetValueOrDefault("family") != "AF_INET"
            || !Ipv4Address.TryParse(fields.GetValueOrDefault("saddr"), out Ipv4Address local)
            || !_hosts.TryGetValue(local, out var host)
            || !Ipv4Address.TryParse(fields.GetValueOrDefault("daddr"), out Ipv4Address remote)
            || !ushort.TryParse(fields.GetValueOrDefault("sport"), out ushort localPort)
            || !ushort.TryParse(fields.GetValueOrDefault("dport"), out ushort remotePort)
            || !LinuxTcpStates.TryFromName(fields.GetValueOrDefault("oldstate") ?? "", out TcpState from)
            || !LinuxTcpStates.TryFromName(fields.GetValueOrDefault("newstate") ?? "", out TcpState to))
            return;
        Instant at = _loop.FromMonotonic((long)(seconds * 1_000_000_000m));
        OnChange(at, host.Name, new FourTuple(local, localPort, remote, remotePort), from, to);
    }

    private void OnChange(Instant at, string host, FourTuple tuple, TcpState from, TcpState to)
    {
        _book.OnChange(at, host, tuple, from, to, () => Timewait(host, tuple));
        if (_book.HasTimewait && !_pollTimer.IsArmed) _pollTimer.Arm(_loop.Now + TimewaitPollInterval);
    }

    // ----- Timewait entries, by sock_diag -----

    private TcpState? Timewait(string host, FourTuple tuple)
    {
        foreach (KernelTcpSocket socket in DiagOf(host).DumpTcp())
            if (socket.Tuple == tuple && socket.State is TcpState.TimeWait or TcpState.FinWait2) return socket.State;
        return null;
    }

    private InetDiag DiagOf(string host) => _hosts.Values.First(h => h.Name == host).Diag;

    private void PollTimewait()
    {
        if (_disposed) return;
        Instant now = _loop.Now;
        foreach (string host in _book.TimewaitHosts.ToList())
            _book.OnTimewaitDump(now, host, DiagOf(host).DumpTcp().ToDictionary(s => s.Tuple, s => s.State));
        if (_book.HasTimewait) _pollTimer.Arm(now + TimewaitPollInterval);
    }

    // ----- tracefs -----

    private static bool MountTraceFs()
    {
        try
        {
            using var mount = System.Diagnostics.Process.Start("mount", ["-t", "tracefs", "nodev", TraceFs]);
            mount.WaitForExit();
            return mount.ExitCode == 0 && Directory.Exists(Path.Combine(TraceFs, "instances"));
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    /// <summary>Instances of lab processes that are gone (killed before their cleanup ran), as NetworkNamespace.CleanupStale does for namespaces.</summary>
    private static void RemoveStaleInstances()
    {
        foreach (string instance in Directory.EnumerateDirectories(Path.Combine(TraceFs, "instances"), "tcplab-*"))
        {
            string[] parts = Path.GetFileName(instance).Split('-');
            if (parts.Length == 3 && int.TryParse(parts[1], out int pid) && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
                RemoveInstance(instance);
        }
    }

    private static void RemoveInstance(string instance)
    {
        try
        {
            string enable = Path.Combine(instance, "events/sock/inet_sock_set_state/enable");
            if (File.Exists(enable)) File.WriteAllText(enable, "0");
            Directory.Delete(instance);   // tracefs removes an instance's files with its directory
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_loop.IsRunning) _loop.Invoke(() => { _loop.UnregisterReadable(_pipe); _pollTimer.Cancel(); });
        _pipe.Dispose();
        foreach (var (_, diag) in _hosts.Values) diag.Dispose();
        RemoveInstance(_instance);
    }
}
