using System.Diagnostics;
using System.Text.RegularExpressions;
using TcpLab.Integration.Tests.Support;
using TcpLab.Lab.Namespaces;

namespace TcpLab.Integration.Tests.Cli;

/// <summary>
/// `tcplab serve` as a user runs it: a separate process that prints one ready line, answers
/// ping in the namespace it names, and removes that namespace when it gets SIGTERM.
/// </summary>
public partial class ServeCommandTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    [NetAdminFact("ping")]
    public async Task Serve_answers_ping_in_its_namespace_and_removes_the_namespace_on_SIGTERM()
    {
        var network = new TestNetwork(107);
        using var serve = Process.Start(new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "tcplab"),
            ["serve", "--address", network.StackAddress + "/24", "--peer-address", network.KernelCidr])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        string? namespaceName = null;
        try
        {
            namespaceName = await ReadReadyLine(serve).WaitAsync(Guard);
            Assert.True(File.Exists(NamespacePath(namespaceName)), $"{namespaceName} should exist while serve runs");

            CommandResult ping = NetworkNamespace.Existing(namespaceName).Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", network.StackAddress);
            Assert.True(ping.Succeeded, ping.Describe() + ping.StandardOutput);
            Assert.Contains("3 received", ping.StandardOutput);

            SendSigterm(serve.Id);
            await serve.WaitForExitAsync().WaitAsync(Guard);
            Assert.Equal(0, serve.ExitCode);
            Assert.False(File.Exists(NamespacePath(namespaceName)), $"{namespaceName} should be gone after SIGTERM");
        }
        finally
        {
            if (!serve.HasExited)
            {
                serve.Kill();                       // our own child, by its PID
                serve.WaitForExit();
            }
            NetworkNamespace.CleanupStale();        // its namespace, if a failure left one: its PID is gone now
        }
    }

    /// <summary>The namespace named by serve's ready line ("... in network namespace NAME ...").</summary>
    private static async Task<string> ReadReadyLine(Process serve)
    {
        while (await serve.StandardOutput.ReadLineAsync() is { } line)
        {
            Match match = ReadyLine().Match(line);
            if (match.Success) return match.Groups[1].Value;
        }
        throw new InvalidOperationException("tcplab serve exited before its ready line: " + await serve.StandardError.ReadToEndAsync());
    }

    private static void SendSigterm(int pid)
    {
        using var kill = Process.Start("kill", ["-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    private static string NamespacePath(string name) => $"{NetworkNamespace.NamespaceDirectory}/{name}";

    [GeneratedRegex(@"^tcplab: .* in network namespace (tcplab-\S+) ")]
    private static partial Regex ReadyLine();
}
