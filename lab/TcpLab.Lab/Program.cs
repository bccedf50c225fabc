using System.CommandLine;
using TcpLab.Lab.Cli;
using TcpLab.Lab.Kernel;
using TcpLab.Lab.Scenarios;
using TcpLab.Stack.Settings;

try
{
    // Our own handler below turns user errors into one line; anything else keeps its stack trace.
    return await LabCommandLine.Build().Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is SysctlException or ScenarioException or FileNotFoundException or KernelSetupException)
{
    // A bad setting or scenario file is the user's to fix: say which and why, without a stack trace.
    Console.Error.WriteLine($"tcplab: {e.Message}");
    return 2;
}
