using System.Diagnostics;

namespace TcpLab.Lab.Tests.Support;

/// <summary>Runs a program the tests compare against (tcpdump, tshark) and skips when it is missing.</summary>
public static class ExternalTools
{
    public static string? Find(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);

    public static (int ExitCode, string Output, string Error) Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(Find(program) ?? program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in arguments) start.ArgumentList.Add(a);
        start.Environment["TZ"] = "UTC";
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000))
        {
            process.Kill();
            throw new TimeoutException($"{program} did not finish in 60 s");
        }
        return (process.ExitCode, output.Result, error.Result);
    }
}

/// <summary>A fact that needs an external program; skipped with a message saying how to get it.</summary>
public sealed class RequiresToolFactAttribute : FactAttribute
{
    public RequiresToolFactAttribute(string program)
    {
        if (ExternalTools.Find(program) is null)
            Skip = $"{program} is not installed: `apt-get install {program}` (make deps does it) to run this comparison";
    }
}

/// <summary>A theory that needs an external program; skipped with a message saying how to get it.</summary>
public sealed class RequiresToolTheoryAttribute : TheoryAttribute
{
    public RequiresToolTheoryAttribute(string program)
    {
        if (ExternalTools.Find(program) is null)
            Skip = $"{program} is not installed: `apt-get install {program}` (make deps does it) to run this comparison";
    }
}
