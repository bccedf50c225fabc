using Microsoft.Extensions.Configuration;
using TcpLab.Stack.Settings;

namespace TcpLab.Lab.Hosting;

/// <summary>
/// Sysctl settings from every place a user can give them, applied in order: appsettings.json
/// ("Sysctls" for every host, "Hosts:NAME:Sysctls" for one), then <c>--set [HOST:]key=value</c>
/// on the command line. Every key and value is validated by <see cref="SysctlRegistry"/>.
/// </summary>
public sealed class SysctlOverrides
{
    private readonly List<(string? Host, string Key, string Value, string Origin)> _settings = new();

    public IReadOnlyList<(string? Host, string Key, string Value, string Origin)> Settings => _settings;

    /// <summary>Reads the "Sysctls" section and each "Hosts:NAME:Sysctls" section.</summary>
    public static SysctlOverrides FromConfiguration(IConfiguration configuration)
    {
        var overrides = new SysctlOverrides();
        foreach (IConfigurationSection entry in configuration.GetSection("Sysctls").GetChildren())
            overrides.Add(null, entry.Key, entry.Value ?? "", "appsettings Sysctls");
        foreach (IConfigurationSection host in configuration.GetSection("Hosts").GetChildren())
            foreach (IConfigurationSection entry in host.GetSection("Sysctls").GetChildren())
                overrides.Add(host.Key, entry.Key, entry.Value ?? "", $"appsettings Hosts:{host.Key}:Sysctls");
        return overrides;
    }

    /// <summary>Adds <c>--set</c> arguments: "key=value" for every host, "host:key=value" for one.</summary>
    public SysctlOverrides AddCommandLine(IEnumerable<string> assignments)
    {
        foreach (string assignment in assignments)
        {
            int equals = assignment.IndexOf('=');
            if (equals <= 0) throw new SysctlException($"--set {assignment}: expected key=value or host:key=value");
            string target = assignment[..equals].Trim();
            string value = assignment[(equals + 1)..].Trim();
            int colon = target.IndexOf(':');
            string? host = colon > 0 ? target[..colon] : null;
            string key = colon > 0 ? target[(colon + 1)..] : target;
            Add(host, key, value, $"--set {assignment}");
        }
        return this;
    }

    private void Add(string? host, string key, string value, string origin)
    {
        // Fail early, before anything runs, with the origin of the bad setting.
        try
        {
            SysctlRegistry.Set(new Sysctls(), key, value);
        }
        catch (SysctlException e)
        {
            throw new SysctlException($"{origin}: {e.Message}");
        }
        _settings.Add((host, key, value, origin));
    }

    /// <summary>The settings for host <paramref name="hostName"/> applied on top of <paramref name="baseline"/>.</summary>
    public Sysctls For(string hostName, Sysctls? baseline = null)
    {
        Sysctls sysctls = baseline?.Clone() ?? new Sysctls();
        foreach (var (host, key, value, origin) in _settings)
        {
            if (host is not null && !string.Equals(host, hostName, StringComparison.Ordinal)) continue;
            try
            {
                SysctlRegistry.Set(sysctls, key, value);
            }
            catch (SysctlException e)
            {
                throw new SysctlException($"{origin}: {e.Message}");
            }
        }
        return sysctls;
    }
}
