using System.CommandLine;
using TcpLab.Lab.Demo;
using TcpLab.Lab.Hosting;
using TcpLab.Lab.Trace;
using TcpLab.Stack.Settings;

namespace TcpLab.Lab.Cli;

/// <summary>The `tcplab` command line: one subcommand per job, global options for settings and logging.</summary>
public static class LabCommandLine
{
    public static readonly Option<string[]> Set = new("--set")
    {
        Description = "A sysctl for every host (net.ipv4.tcp_syn_retries=2) or one host (client:net.ipv4.tcp_syn_retries=2); repeatable",
        Recursive = true,
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
    };

    public static readonly Option<string?> LogLevel = new("--log-level")
    {
        Description = "trace, debug, info, warning, error or fatal (default: Serilog:MinimumLevel in appsettings.json, else info)",
        Recursive = true,
    };

    public static readonly Option<string?> Config = new("--config")
    {
        Description = "An extra JSON settings file, read after appsettings.json",
        Recursive = true,
    };

    public static RootCommand Build()
    {
        var root = new RootCommand("TcpLab: a user-space TCP/IP stack that behaves like Linux, and a lab to run TCP experiments on it")
        {
            Set, LogLevel, Config,
            ScenarioCommands.List(),
            ScenarioCommands.Run(),
            TapCommands.Serve(),
            TapCommands.Connect(),
            DemoCommand(),
            SysctlsCommand(),
            DumpCommand(),
        };
        return root;
    }

    public static CommonOptions Common(ParseResult result) =>
        new(result.GetValue(Set) ?? [], result.GetValue(LogLevel), result.GetValue(Config));

    private static Command DemoCommand()
    {
        var output = new Option<string>("--out") { Description = "Where to write the capture", DefaultValueFactory = _ => "out/demo" };
        var command = new Command("demo", "Ping and a TCP exchange between two managed hosts, in simulation (no root needed)") { output };
        command.SetAction(async (result, cancellation) =>
        {
            var builder = LabHost.CreateBuilder(Common(result));
            var sysctls = SysctlOverrides.FromConfiguration(builder.Configuration).AddCommandLine(Common(result).Sets);
            return await SimulatedDemo.RunAsync(sysctls, result.GetValue(output)!, Console.Out);
        });
        return command;
    }

    private static Command DumpCommand()
    {
        var file = new Argument<string>("FILE") { Description = "A pcap or pcapng file, as tcpdump, Wireshark or tcplab wrote it" };
        var relativeTime = new Option<bool>("--relative-time") { Description = "Time since the first frame (tcpdump -ttttt) instead of the time of day" };
        var absoluteSeq = new Option<bool>("--absolute-seq") { Description = "Absolute sequence and acknowledgment numbers (tcpdump -S)" };
        var noAnalysis = new Option<bool>("--no-analysis") { Description = "Leave out Wireshark's TCP analysis labels" };
        var command = new Command("dump",
            "Print a capture as `tcpdump -n` does, each frame with Wireshark's TCP analysis labels and its packet comment")
        {
            file, relativeTime, absoluteSeq, noAnalysis,
        };
        command.SetAction(result => CaptureDump.Run(result.GetValue(file)!,
            new DumpOptions(result.GetValue(relativeTime), result.GetValue(absoluteSeq), !result.GetValue(noAnalysis)),
            result.InvocationConfiguration.Output, result.InvocationConfiguration.Error));
        return command;
    }

    private static Command SysctlsCommand()
    {
        var command = new Command("sysctls", "The kernel parameters the lab honours, with their defaults (or the values --set gives)");
        command.SetAction(result =>
        {
            var builder = LabHost.CreateBuilder(Common(result));
            Sysctls values = SysctlOverrides.FromConfiguration(builder.Configuration).AddCommandLine(Common(result).Sets).For("any");
            foreach (var (key, value) in SysctlRegistry.All(values)) Console.WriteLine($"{key} = {value}");
            return 0;
        });
        return command;
    }
}
