using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace TcpLab.Lab.Hosting;

/// <summary>Options every command shares: where settings come from and how loud the log is.</summary>
public sealed record CommonOptions(IReadOnlyList<string> Sets, string? LogLevel, string? ConfigFile);

/// <summary>
/// Builds the generic host a command runs in: configuration from appsettings.json (next to the
/// program, then an optional --config file), TCPLAB_ environment variables; Serilog as the
/// logging provider with a level switch (--log-level, else Serilog:MinimumLevel); Ctrl+C and
/// SIGTERM stop it (console lifetime).
/// </summary>
public static class LabHost
{
    public static HostApplicationBuilder CreateBuilder(CommonOptions common)
    {
        // DisableDefaults: the lab chooses its configuration sources and logging itself; the
        // console lifetime (Ctrl+C, SIGTERM) is registered by the builder regardless.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Configuration
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables("TCPLAB_");
        if (common.ConfigFile is { } file)
        {
            if (!File.Exists(file)) throw new FileNotFoundException($"--config {file}: no such file", file);
            builder.Configuration.AddJsonFile(Path.GetFullPath(file), optional: false);
        }

        var levelSwitch = new LoggingLevelSwitch(ParseLevel(common.LogLevel ?? builder.Configuration["Serilog:MinimumLevel"] ?? "Information"));
        Logger logger = new LoggerConfiguration()
            .MinimumLevel.ControlledBy(levelSwitch)
            .WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}",
                             standardErrorFromLevel: LogEventLevel.Verbose)
            .CreateLogger();
        builder.Logging.ClearProviders().AddSerilog(logger, dispose: true);
        builder.Services.AddSingleton(levelSwitch);
        builder.Services.AddSingleton(SysctlOverrides.FromConfiguration(builder.Configuration).AddCommandLine(common.Sets));
        return builder;
    }

    private static LogEventLevel ParseLevel(string text) => text.ToLowerInvariant() switch
    {
        "verbose" or "trace" => LogEventLevel.Verbose,
        "debug" => LogEventLevel.Debug,
        "information" or "info" => LogEventLevel.Information,
        "warning" or "warn" => LogEventLevel.Warning,
        "error" => LogEventLevel.Error,
        "fatal" or "critical" => LogEventLevel.Fatal,
        _ => throw new ArgumentException($"--log-level {text}: expected trace, debug, info, warning, error or fatal"),
    };
}
