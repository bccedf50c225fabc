namespace TcpLab.Lab.Scenarios;

/// <summary>The scenario files shipped with the lab (scenarios/*.yaml, copied next to the program).</summary>
public static class Catalogue
{
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "scenarios");

    /// <summary>Every catalogue scenario, read and checked, in name order.</summary>
    public static IReadOnlyList<Scenario> All() =>
        System.IO.Directory.Exists(Directory)
            ? System.IO.Directory.GetFiles(Directory, "*.yaml").Select(ScenarioReader.ReadFile).OrderBy(s => s.Name, StringComparer.Ordinal).ToList()
            : [];

    /// <summary>A catalogue name ("syn-loss") or a path to a scenario file.</summary>
    public static Scenario Find(string nameOrPath)
    {
        if (File.Exists(nameOrPath)) return ScenarioReader.ReadFile(nameOrPath);
        string path = Path.Combine(Directory, nameOrPath + ".yaml");
        if (File.Exists(path)) return ScenarioReader.ReadFile(path);
        string[] known = System.IO.Directory.Exists(Directory)
            ? System.IO.Directory.GetFiles(Directory, "*.yaml").Select(f => Path.GetFileNameWithoutExtension(f)).Order().ToArray()
            : [];
        throw new FileNotFoundException($"no scenario '{nameOrPath}': not a file, and not in the catalogue ({string.Join(", ", known)})");
    }
}
