using System.Globalization;
using System.Reflection;

namespace TcpLab.Stack.Settings;

/// <summary>
/// Reads and writes <see cref="Sysctls"/> by Linux key, parsing values the way
/// <c>sysctl -w</c> takes them (integers in the key's unit, whitespace-separated vectors)
/// and refusing anything outside the kernel's range with a message that names the key.
/// </summary>
public static class SysctlRegistry
{
    private sealed record Entry(SysctlAttribute Meta, PropertyInfo Property);

    private static readonly Dictionary<string, Entry> ByKey = Build();

    public static IEnumerable<string> Keys => ByKey.Keys.Order(StringComparer.Ordinal);

    public static bool IsKnown(string key) => ByKey.ContainsKey(key);

    /// <summary>Sets <paramref name="key"/> from its textual value, or throws <see cref="SysctlException"/>.</summary>
    public static void Set(Sysctls sysctls, string key, string value)
    {
        Entry entry = Find(key);
        object parsed = Parse(entry, value.Trim());
        object previous = entry.Property.GetValue(sysctls)!;
        entry.Property.SetValue(sysctls, parsed);
        try
        {
            sysctls.Validate();
        }
        catch (SysctlException)
        {
            entry.Property.SetValue(sysctls, previous);
            throw;
        }
    }

    /// <summary>The value as /proc/sys would show it.</summary>
    public static string Get(Sysctls sysctls, string key)
    {
        Entry entry = Find(key);
        return Format(entry, entry.Property.GetValue(sysctls)!);
    }

    /// <summary>Every key with its value, sorted by key (what <c>sysctl -a</c> would print for us).</summary>
    public static IEnumerable<KeyValuePair<string, string>> All(Sysctls sysctls) =>
        Keys.Select(k => new KeyValuePair<string, string>(k, Get(sysctls, k)));

    private static Entry Find(string key) =>
        ByKey.TryGetValue(key, out Entry? entry)
            ? entry
            : throw new SysctlException($"unknown sysctl '{key}'" + Suggest(key));

    private static string Suggest(string key)
    {
        string tail = key[(key.LastIndexOf('.') + 1)..];
        string? near = ByKey.Keys.FirstOrDefault(k => k.EndsWith("." + tail, StringComparison.Ordinal));
        return near is null ? " (`tcplab sysctls` lists the keys the lab honours)" : $" (did you mean '{near}'?)";
    }

    private static object Parse(Entry entry, string text)
    {
        SysctlAttribute meta = entry.Meta;
        Type type = entry.Property.PropertyType;
        if (type == typeof(string))
        {
            if (text.Length == 0) throw new SysctlException($"{meta.Key}: empty value");
            return text;
        }
        if (type == typeof(int[]))
        {
            string[] parts = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            int expected = ((int[])entry.Property.GetValue(new Sysctls())!).Length;
            if (parts.Length != expected)
                throw new SysctlException($"{meta.Key}: expected {expected} numbers separated by spaces, got '{text}'");
            return parts.Select(p => (int)ParseInteger(meta, p)).ToArray();
        }
        long value = ParseInteger(meta, text);
        if (type == typeof(bool)) return value != 0;
        if (type == typeof(int)) return (int)value;
        if (type == typeof(TimeSpan)) return meta.Unit switch
        {
            SysctlUnit.Nanoseconds => TimeSpan.FromTicks(value / 100),
            SysctlUnit.Microseconds => TimeSpan.FromMicroseconds(value),
            SysctlUnit.Milliseconds => TimeSpan.FromMilliseconds(value),
            SysctlUnit.Seconds => TimeSpan.FromSeconds(value),
            _ => throw new InvalidOperationException($"{meta.Key}: TimeSpan sysctl without a unit"),
        };
        throw new InvalidOperationException($"{meta.Key}: unsupported sysctl type {type.Name}");
    }

    private static long ParseInteger(SysctlAttribute meta, string text)
    {
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
            throw new SysctlException($"{meta.Key}: '{text}' is not an integer");
        if (value < meta.Min || value > meta.Max)
            throw new SysctlException($"{meta.Key}: {value} is out of range {meta.Min}..{meta.Max}");
        return value;
    }

    private static string Format(Entry entry, object value) => value switch
    {
        bool b => b ? "1" : "0",
        int[] v => string.Join('\t', v),
        TimeSpan t => entry.Meta.Unit switch
        {
            SysctlUnit.Nanoseconds => (t.Ticks * 100).ToString(CultureInfo.InvariantCulture),
            SysctlUnit.Microseconds => ((long)t.TotalMicroseconds).ToString(CultureInfo.InvariantCulture),
            SysctlUnit.Milliseconds => ((long)t.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            _ => ((long)t.TotalSeconds).ToString(CultureInfo.InvariantCulture),
        },
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static Dictionary<string, Entry> Build()
    {
        var map = new Dictionary<string, Entry>(StringComparer.Ordinal);
        foreach (PropertyInfo p in typeof(Sysctls).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<SysctlAttribute>() is { } meta) map.Add(meta.Key, new Entry(meta, p));
        }
        return map;
    }
}
