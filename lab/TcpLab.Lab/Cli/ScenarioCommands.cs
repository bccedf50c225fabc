using System.CommandLine;
using System.Runtime.InteropServices;
using Spectre.Console;
using TcpLab.Lab.Hosting;
using TcpLab.Lab.Kernel;
using TcpLab.Lab.Scenarios;

namespace TcpLab.Lab.Cli;

/// <summary>`tcplab list` and `tcplab run`.</summary>
public static class ScenarioCommands
{
    public static Command List()
    {
        var command = new Command("list", "The experiment catalogue, with a line on each");
        command.SetAction(_ =>
        {
            var table = new Table().AddColumns("Scenario", "What happens", "Source");
            foreach (Scenario s in Catalogue.All()) table.AddRow(Markup.Escape(s.Name), Markup.Escape(s.Title), Markup.Escape(s.Source ?? ""));
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }

    public static Command Run()
    {
        var names = new Argument<string[]>("scenario") { Description = "Catalogue names or scenario files (default: the whole catalogue)", Arity = ArgumentArity.ZeroOrMore };
        var seed = new Option<ulong>("--seed") { Description = "Seed of every random choice (the same seed gives the same capture)", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "Directory for the artifacts (DIR/NAME/...)", DefaultValueFactory = _ => "out" };
        var variant = new Option<string>("--variant")
        {
            Description = "document (the sysctls the documents used), current-kernel, or both",
            DefaultValueFactory = _ => "both",
        };
        variant.AcceptOnlyFromAmong("document", "current-kernel", "both");
        var peer = new Option<string>("--peer")
        {
            Description = "managed: every host simulated (no root needed); linux: the scenario's Linux side (the server) is the real kernel "
                          + "in a network namespace; both-linux: every host is the real kernel, the lab only the wire (root needed for both)",
            DefaultValueFactory = _ => "managed",
        };
        peer.AcceptOnlyFromAmong("managed", "linux", "both-linux");
        var command = new Command("run", "Run experiments and check their expectations") { names, seed, output, variant, peer };
        command.SetAction(result =>
        {
            CommonOptions common = LabCommandLine.Common(result);
            var builder = LabHost.CreateBuilder(common);
            var overrides = SysctlOverrides.FromConfiguration(builder.Configuration).AddCommandLine(common.Sets);
            string[] requested = result.GetValue(names) ?? [];
            IReadOnlyList<Scenario> scenarios = requested.Length == 0 ? Catalogue.All() : requested.Select(Catalogue.Find).ToList();
            var options = new RunOptions(result.GetValue(seed), result.GetValue(output)!, overrides);
            string which = result.GetValue(variant)!;
            PeerMode mode = result.GetValue(peer) switch { "linux" => PeerMode.Linux, "both-linux" => PeerMode.BothLinux, _ => PeerMode.Managed };
            if (mode != PeerMode.Managed && KernelRun.Unavailable() is { } why)
            {
                Console.Error.WriteLine($"tcplab: --peer {result.GetValue(peer)} {why}");
                return 2;
            }

            var runs = scenarios.SelectMany(s => Variants(s, which).Select(v => (Scenario: s, Variant: v))).ToList();
            List<ScenarioResult> results = mode == PeerMode.Managed
                ? runs.Select(r => SimulationRun.Run(r.Scenario, r.Variant, options)).ToList()
                : RunAgainstKernel(runs, options, mode);
            Report(results);
            return results.All(r => r.Passed) ? 0 : 1;
        });
        return command;
    }

    /// <summary>Real-time runs take the experiment's own time: a progress bar per run on a terminal, a line per run otherwise.</summary>
    private static List<ScenarioResult> RunAgainstKernel(List<(Scenario Scenario, Variant Variant)> runs, RunOptions options, PeerMode mode)
    {
        // Ctrl+C or SIGTERM ends the current experiment through its normal cleanup (namespaces,
        // tracefs instance), and no further one starts.
        using var stop = new CancellationTokenSource();
        void Interrupt(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);

        var results = new List<ScenarioResult>();
        if (Console.IsOutputRedirected)
        {
            foreach (var (scenario, variant) in runs.TakeWhile(_ => !stop.IsCancellationRequested))
            {
                Console.WriteLine($"running {scenario.Name} ({variant.Name}) against the kernel: {scenario.Duration.TotalSeconds:0.#} s");
                results.Add(KernelRun.Run(scenario, variant, options, mode, stop: stop.Token));
            }
            return results;
        }
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                foreach (var (scenario, variant) in runs.TakeWhile(_ => !stop.IsCancellationRequested))
                {
                    ProgressTask task = context.AddTask(Markup.Escape($"{scenario.Name} ({variant.Name}, {KernelRun.ModeName(mode)})"), maxValue: 1);
                    results.Add(KernelRun.Run(scenario, variant, options, mode, fraction => task.Value = fraction, stop.Token));
                    task.StopTask();
                }
            });
        return results;
    }

    private static IEnumerable<Variant> Variants(Scenario scenario, string which)
    {
        if (which is "document" or "both") yield return scenario.Document;
        if (which is "current-kernel" or "both" && scenario.CurrentKernel is { } current) yield return current;
    }

    private static void Report(IReadOnlyList<ScenarioResult> results)
    {
        // Plain text when redirected (make run in CI, pipes): no colour codes in logs.
        if (Console.IsOutputRedirected)
        {
            AnsiConsole.Profile.Capabilities.Ansi = false;
            AnsiConsole.Profile.Width = 120;   // not the 80 columns Spectre assumes without a terminal
        }
        var table = new Table().AddColumns("Scenario", "Variant", "Result", "Expectations", "Experiment", "Run took");
        foreach (ScenarioResult r in results)
        {
            int notApplicable = r.Expectations.Count(e => e.NotApplicable is not null);
            table.AddRow(Markup.Escape(r.Scenario), Markup.Escape(r.Mode == "simulation" ? r.Variant : $"{r.Variant} ({r.Mode})"),
                         r.Passed ? "[green]pass[/]" : "[red]FAIL[/]",
                         $"{r.Expectations.Count(e => e.Passed)}/{r.Expectations.Count}" + (notApplicable > 0 ? $" ({notApplicable} n/a)" : ""),
                         $"{r.ExperimentTime.TotalSeconds:0.###} s",
                         $"{r.WallTime.TotalMilliseconds:0} ms");
        }
        AnsiConsole.Write(table);
        foreach (ScenarioResult r in results.Where(r => !r.Passed))
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(r.Scenario)} ({Markup.Escape(r.Variant)})[/] in {Markup.Escape(r.ArtifactDirectory)}:");
            if (r.Failure is not null) AnsiConsole.MarkupLine($"  {Markup.Escape(r.Failure)}");
            foreach (ExpectationResult e in r.Expectations.Where(e => !e.Passed))
                AnsiConsole.MarkupLine($"  line {e.Line}: {Markup.Escape(e.Description)}: expected {Markup.Escape(e.Expected)}, measured {Markup.Escape(e.Measured)}");
        }
        foreach (ScenarioResult r in results)
        {
            if (r.LinuxNotes is { } notes) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(r.Scenario)} against Linux: {Markup.Escape(notes)}[/]");
            foreach (ExpectationResult e in r.Expectations.Where(e => e.NotApplicable is not null))
                AnsiConsole.MarkupLine($"[grey]{Markup.Escape(r.Scenario)} line {e.Line}: {Markup.Escape(e.Description)}: not checked, {Markup.Escape(e.NotApplicable!)}[/]");
        }
        int passed = results.Count(r => r.Passed);
        AnsiConsole.MarkupLine($"{passed}/{results.Count} runs passed; artifacts (capture.pcapng, trace.txt, states.txt, result.json) under each run's directory.");
    }
}
