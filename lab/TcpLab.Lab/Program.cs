using System.CommandLine;
using TcpLab.Lab.Cli;
using TcpLab.Lab.Scenarios;
using TcpLab.Stack.Settings;

try
{
    return await LabCommandLine.Build().Parse(args).InvokeAsync();
}
catch (Exception e) when (e is SysctlException or ScenarioException or FileNotFoundException)
{
    // A bad setting or scenario file is the user's to fix: say which and why, without a stack trace.
    Console.Error.WriteLine($"tcplab: {e.Message}");
    return 2;
}
