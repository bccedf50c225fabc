using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Kernel;

/// <summary>
/// One run against the kernel at a time per host address on this machine: the state tracepoint
/// is shared by all namespaces and its events are told apart by address, so two runs using the
/// same address would see each other's connections. Runs on disjoint addresses may overlap
/// (a two-hour keepalive experiment beside the rest of the catalogue). Every run also holds
/// /run/tcplab-kernel-run.lock shared, so that a benchmark that takes it exclusively
/// (`flock /run/tcplab-kernel-run.lock ...`) waits for the timing-sensitive runs and they for it.
/// </summary>
public sealed class KernelRunLock : IDisposable
{
    private const string LockDirectory = "/run/tcplab-kernel-run";
    private const string MachineLock = "/run/tcplab-kernel-run.lock";
    private readonly List<FileStream> _files;

    private KernelRunLock(List<FileStream> files) => _files = files;

    /// <summary>
    /// Waits until no other run uses any of <paramref name="addresses"/> (telling
    /// <paramref name="waiting"/> once if it has to). All or nothing: a run holds either every
    /// address's lock or none while it waits, so two runs never wait on each other.
    /// </summary>
    public static KernelRunLock Acquire(IEnumerable<Ipv4Address> addresses, Action? waiting = null)
    {
        Directory.CreateDirectory(LockDirectory);
        string[] paths = addresses.Select(a => Path.Combine(LockDirectory, $"{a}.lock")).Distinct().Order(StringComparer.Ordinal).ToArray();
        bool told = false;
        while (true)
        {
            var held = new List<FileStream>();
            try
            {
                // FileShare.None takes flock(LOCK_EX | LOCK_NB) on Linux, any other share LOCK_SH;
                // the kernel drops them if we die.
                held.Add(new FileStream(MachineLock, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite));
                foreach (string path in paths)
                    held.Add(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
                return new KernelRunLock(held);
            }
            catch (IOException)
            {
                foreach (FileStream file in held) file.Dispose();
                if (!told) waiting?.Invoke();
                told = true;
                Thread.Sleep(200);
            }
        }
    }

    public void Dispose()
    {
        foreach (FileStream file in _files) file.Dispose();
    }
}
