using System.CommandLine;
using Spectre.Console;
using TcpLab.Lab.Hosting;
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
        var command = new Command("run", "Run experiments and check their expectations") { names, seed, output, variant };
        command.SetAction(result =>
        {
            CommonOptions common = LabCommandLine.Common(result);
            var builder = LabHost.CreateBuilder(common);
            var overrides = SysctlOverrides.FromConfiguration(builder.Configuration).AddCommandLine(common.Sets);
            string[] requested = result.GetValue(names) ?? [];
            IReadOnlyList<Scenario> scenarios = requested.Length == 0 ? Catalogue.All() : requested.Select(Catalogue.Find).ToList();
            var options = new RunOptions(result.GetValue(seed), result.GetValue(output)!, overrides);
            string which = result.GetValue(variant)!;

            var results = new List<ScenarioResult>();
            foreach (Scenario scenario in scenarios)
            {
                foreach (Variant v in Variants(scenario, which))
                    results.Add(SimulationRun.Run(scenario, v, options));
            }
            Report(results);
            return results.All(r => r.Passed) ? 0 : 1;
        });
        return command;
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
            table.AddRow(Markup.Escape(r.Scenario), Markup.Escape(r.Variant),
                         r.Passed ? "[green]pass[/]" : "[red]FAIL[/]",
                         $"{r.Expectations.Count(e => e.Passed)}/{r.Expectations.Count}",
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
        int passed = results.Count(r => r.Passed);
        AnsiConsole.MarkupLine($"{passed}/{results.Count} runs passed; artifacts (capture.pcapng, trace.txt, states.txt, result.json) under each run's directory.");
    }
}
