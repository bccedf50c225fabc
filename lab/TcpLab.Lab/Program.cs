using System.CommandLine;
using TcpLab.Lab.Cli;
using TcpLab.Stack.Settings;

try
{
    return await LabCommandLine.Build().Parse(args).InvokeAsync();
}
catch (SysctlException e)
{
    // A bad setting is the user's to fix: say which one and why, without a stack trace.
    Console.Error.WriteLine($"tcplab: {e.Message}");
    return 2;
}
