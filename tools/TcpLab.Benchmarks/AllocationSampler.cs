using System.Diagnostics.Tracing;

namespace TcpLab.Benchmarks;

/// <summary>Counts the runtime's AllocationTick events (one per ~100 KB allocated) by type: where steady-state allocations come from.</summary>
public sealed class AllocationSampler : EventListener
{
    private readonly Dictionary<string, int> _byType = new();

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
            EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword: AllocationTick
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName != "GCAllocationTick_V4" || e.Payload is null) return;
        int index = e.PayloadNames!.IndexOf("TypeName");
        string type = index >= 0 ? e.Payload[index]?.ToString() ?? "?" : "?";
        lock (_byType) _byType[type] = _byType.GetValueOrDefault(type) + 1;
    }

    public string Report()
    {
        lock (_byType)
            return string.Join("\n", _byType.OrderByDescending(p => p.Value).Take(15).Select(p => $"  {p.Value,6} x ~100 KB  {p.Key}"));
    }
}
