using System.Diagnostics;
using System.Text.RegularExpressions;
using TcpLab.Stack.Interop;

namespace TcpLab.Lab.Namespaces;

/// <summary>
/// A network namespace the lab created and owns, named <c>tcplab-PID-N</c> so that one left
/// behind by a crashed run can be recognised and removed (<see cref="CleanupStale"/>) without
/// touching anybody else's. Managed with iproute2 (<c>ip netns</c>), which makes a namespace
/// persistent by bind-mounting it at /run/netns/NAME. Every command is started with an argument
/// list, never through a shell.
/// </summary>
public sealed partial class NetworkNamespace : IDisposable
{
    public const string NamePrefix = "tcplab-";
    public const string NamespaceDirectory = "/run/netns";

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);
    private static int s_counter;

    private NetworkNamespace(string name) => Name = name;

    public string Name { get; }

    /// <summary>The namespace file, for setns(2) (<see cref="NetworkNamespaceThread"/>).</summary>
    public string Path => PathOf(Name);

    public bool Exists => File.Exists(Path);

    /// <summary>
    /// A namespace someone else made (e.g. with ip netns add): usable like ours, but
    /// <see cref="Dispose"/> leaves it in place.
    /// </summary>
    public static NetworkNamespace Existing(string name)
    {
        if (!File.Exists(PathOf(name))) throw new InvalidOperationException($"network namespace '{name}' does not exist (ip netns list)");
        return new NetworkNamespace(name) { _owned = false };
    }

    private bool _owned = true;

    /// <summary>Creates a new namespace with its loopback interface up.</summary>
    public static NetworkNamespace Create()
    {
        string name;
        do
        {
            // A name of ours can only be taken by an earlier process that had our pid and died.
            name = $"{NamePrefix}{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";
        } while (File.Exists(PathOf(name)));

        RunChecked("ip", "netns", "add", name);
        var ns = new NetworkNamespace(name);
        try
        {
            ns.Run("link", "set", "lo", "up");
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    /// <summary>Runs <c>ip -n NAME ARGS...</c>; returns its output, throws with its stderr on failure.</summary>
    public string Run(params string[] ipArgs) => RunChecked("ip", ["-n", Name, .. ipArgs]).StandardOutput;

    /// <summary>
    /// Runs a program inside the namespace (<c>ip netns exec NAME PROGRAM ARGS...</c>) to
    /// completion and returns how it went, failure included. One still running after 30 s is
    /// killed and <see cref="TimeoutException"/> thrown.
    /// </summary>
    public CommandResult Exec(string program, params string[] args) =>
        RunToCompletion("ip", ["netns", "exec", Name, program, .. args], CommandTimeout);

    /// <summary>
    /// Starts a program inside the namespace and returns at once. <c>ip netns exec</c> execs the
    /// program, so the Process's PID is the program's: end it with <see cref="Process.Kill()"/>.
    /// Its standard output and error are redirected; read them, or it stalls once a pipe is full.
    /// </summary>
    public Process StartProcess(string program, params string[] args) =>
        StartRedirected("ip", ["netns", "exec", Name, program, .. args]);

    /// <summary>
    /// Creates a veth pair: <paramref name="name"/> here, <paramref name="peerName"/> in
    /// <paramref name="peerNamespace"/>. Both ends are created in place, so no device ever
    /// appears in the caller's namespace, and deleting either namespace deletes the pair.
    /// </summary>
    public void CreateVethPair(string name, NetworkNamespace peerNamespace, string peerName)
    {
        ArgumentNullException.ThrowIfNull(peerNamespace);
        NetDeviceName.Validate(name);
        NetDeviceName.Validate(peerName);
        Run("link", "add", name, "type", "veth", "peer", "name", peerName, "netns", peerNamespace.Name);
    }

    /// <summary>Deletes the namespace and every device in it. Idempotent; quiet if it is already gone.</summary>
    public void Dispose()
    {
        if (!_owned || !Exists) return;
        CommandResult result = RunToCompletion("ip", ["netns", "delete", Name], CommandTimeout);
        // Someone else deleting it between the check and the command is fine; a leak is not.
        if (!result.Succeeded && Exists) throw new InvalidOperationException(result.Describe());
    }

    public override string ToString() => Name;

    /// <summary>
    /// Deletes namespaces named <c>tcplab-PID-N</c> whose process is gone, left behind by runs
    /// that crashed or were killed. Others, including those of live tcplab processes and every
    /// name not of that form, are left alone. Returns how many were deleted.
    /// </summary>
    public static int CleanupStale()
    {
        if (!Directory.Exists(NamespaceDirectory)) return 0;
        int deleted = 0;
        foreach (string path in Directory.EnumerateFiles(NamespaceDirectory))
        {
            string name = System.IO.Path.GetFileName(path);
            Match match = OwnedNamePattern().Match(name);
            if (!match.Success || !int.TryParse(match.Groups["pid"].Value, out int pid) || IsProcessAlive(pid)) continue;
            if (RunToCompletion("ip", ["netns", "delete", name], CommandTimeout).Succeeded) deleted++;
        }
        return deleted;
    }

    private static string PathOf(string name) => $"{NamespaceDirectory}/{name}";

    private static bool IsProcessAlive(int pid) => pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}");

    [GeneratedRegex(@"^tcplab-(?<pid>[0-9]+)-[0-9]+$")]
    private static partial Regex OwnedNamePattern();

    private static CommandResult RunChecked(string program, params string[] args)
    {
        CommandResult result = RunToCompletion(program, args, CommandTimeout);
        if (!result.Succeeded) throw new InvalidOperationException(result.Describe());
        return result;
    }

    private static CommandResult RunToCompletion(string program, string[] args, TimeSpan timeout)
    {
        using Process process = StartRedirected(program, args);
        // Both pipes drain concurrently, so a chatty program cannot block on a full one.
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(); // this PID only: it is ours
            process.WaitForExit();
            throw new TimeoutException($"`{CommandResult.Format(program, args)}` still running after {timeout.TotalSeconds:0} s; killed");
        }
        process.WaitForExit(); // waits for the redirected streams to close as well
        return new CommandResult(CommandResult.Format(program, args), process.ExitCode, output.Result, error.Result);
    }

    private static Process StartRedirected(string program, string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        return Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
    }
}

/// <summary>How a command ended.</summary>
public sealed record CommandResult(string Command, int ExitCode, string StandardOutput, string StandardError)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>"`ip netns add x` failed (exit 1): STDERR".</summary>
    public string Describe() => $"`{Command}` {(Succeeded ? "succeeded" : $"failed (exit {ExitCode})")}: {StandardError.Trim()}";

    internal static string Format(string program, IEnumerable<string> args) =>
        string.Join(' ', args.Prepend(program).Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) ? $"'{a}'" : a));
}
