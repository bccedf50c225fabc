using System.Diagnostics;
using TcpLab.Integration.Tests.Support;
using TcpLab.Lab.Namespaces;

namespace TcpLab.Integration.Tests.Namespaces;

/// <summary>NetworkNamespace against the real iproute2. Checks go through `ip` itself, not the class's own view.</summary>
public class NetworkNamespaceTests
{
    [NetAdminFact]
    public void Create_makes_a_uniquely_named_namespace_with_loopback_up_and_Dispose_deletes_it()
    {
        using NetworkNamespace first = NetworkNamespace.Create();
        using NetworkNamespace second = NetworkNamespace.Create();

        Assert.Matches($"^tcplab-{Environment.ProcessId}-[0-9]+$", first.Name);
        Assert.NotEqual(first.Name, second.Name);
        Assert.Equal($"/run/netns/{first.Name}", first.Path);
        Assert.Contains(first.Name, ListedNamespaces());
        Assert.Contains("state UNKNOWN", first.Run("link", "show", "lo")); // loopback up has no carrier state
        Assert.Contains("LOOPBACK,UP", first.Run("link", "show", "lo"));

        first.Dispose();
        Assert.DoesNotContain(first.Name, ListedNamespaces());
        Assert.False(first.Exists);
        first.Dispose(); // already gone: quiet
        Assert.Contains(second.Name, ListedNamespaces());
    }

    [NetAdminFact]
    public void Dispose_is_quiet_when_someone_else_deleted_the_namespace()
    {
        NetworkNamespace ns = NetworkNamespace.Create();
        try
        {
            RunIp("netns", "delete", ns.Name);
        }
        finally
        {
            ns.Dispose();
        }
        Assert.DoesNotContain(ns.Name, ListedNamespaces());
    }

    [NetAdminFact]
    public void A_failing_ip_command_reports_the_command_and_its_stderr()
    {
        using NetworkNamespace ns = NetworkNamespace.Create();
        var error = Assert.Throws<InvalidOperationException>(() => ns.Run("link", "show", "no-such-dev"));
        Assert.Contains($"ip -n {ns.Name} link show no-such-dev", error.Message);
        Assert.Contains("does not exist", error.Message); // iproute2: Device "no-such-dev" does not exist.
    }

    [NetAdminFact]
    public void Exec_runs_a_program_inside_the_namespace()
    {
        using NetworkNamespace ns = NetworkNamespace.Create();
        CommandResult links = ns.Exec("ip", "-o", "link", "show");
        Assert.True(links.Succeeded, links.Describe());
        // Only the namespace's own loopback, none of the host's interfaces.
        Assert.Equal(["lo"], links.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(':')[1].Trim()));

        CommandResult failing = ns.Exec("ip", "link", "show", "no-such-dev");
        Assert.False(failing.Succeeded);
        Assert.NotEqual(0, failing.ExitCode);
    }

    [NetAdminFact]
    public void StartProcess_returns_the_program_itself_so_it_can_be_ended_by_pid()
    {
        using NetworkNamespace ns = NetworkNamespace.Create();
        using Process sleeper = ns.StartProcess("sleep", "60");
        try
        {
            // ip netns exec execs the program: the PID we hold is sleep's, running in the namespace.
            FrameCollector.WaitUntil("sleep to exec", () =>
                File.Exists($"/proc/{sleeper.Id}/comm") && File.ReadAllText($"/proc/{sleeper.Id}/comm").Trim() == "sleep");
            Assert.Equal(ns.Name, RunIp("netns", "identify", sleeper.Id.ToString()).Trim());
        }
        finally
        {
            sleeper.Kill();
            sleeper.WaitForExit();
        }
        Assert.True(sleeper.HasExited);
    }

    [NetAdminFact]
    public void CreateVethPair_puts_one_end_in_each_namespace()
    {
        using NetworkNamespace left = NetworkNamespace.Create();
        using NetworkNamespace right = NetworkNamespace.Create();
        left.CreateVethPair("vl0", right, "vr0");

        Assert.Contains("vl0@", left.Run("-o", "link", "show", "vl0"));
        Assert.Contains("vr0@", right.Run("-o", "link", "show", "vr0"));
        Assert.Throws<InvalidOperationException>(() => left.Run("link", "show", "vr0"));
        Assert.Throws<ArgumentException>(() => left.CreateVethPair("sixteen-chars-xx", right, "vr1"));
    }

    [NetAdminFact]
    public void CleanupStale_deletes_namespaces_of_dead_tcplab_processes_and_nothing_else()
    {
        int deadPid = PidOfAnExitedProcess();
        string stale = $"tcplab-{deadPid}-1";
        string notOurs = $"tcplabx-{deadPid}-1"; // close to the pattern, but not of it
        using NetworkNamespace live = NetworkNamespace.Create();
        RunIp("netns", "add", stale);
        try
        {
            RunIp("netns", "add", notOurs);
            try
            {
                int deleted = NetworkNamespace.CleanupStale();

                List<string> listed = ListedNamespaces();
                Assert.DoesNotContain(stale, listed);
                Assert.Contains(notOurs, listed);
                Assert.Contains(live.Name, listed);
                Assert.True(deleted >= 1);
            }
            finally
            {
                RunIp("netns", "delete", notOurs);
            }
        }
        finally
        {
            if (File.Exists($"/run/netns/{stale}")) RunIp("netns", "delete", stale);
        }
    }

    private static int PidOfAnExitedProcess()
    {
        using Process process = Process.Start("true")!;
        process.WaitForExit();
        return process.Id;
    }

    private static List<string> ListedNamespaces() =>
        RunIp("netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split(' ')[0]).ToList();

    private static string RunIp(params string[] args)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        using Process ip = Process.Start(start)!;
        string output = ip.StandardOutput.ReadToEnd();
        string error = ip.StandardError.ReadToEnd();
        ip.WaitForExit();
        Assert.True(ip.ExitCode == 0, $"ip {string.Join(' ', args)}: {error}");
        return output;
    }
}
