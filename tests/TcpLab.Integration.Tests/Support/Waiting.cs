namespace TcpLab.Integration.Tests.Support;

/// <summary>Waiting on the real kernel and the real-time loop, bounded by a hang guard (never a timing assertion).</summary>
internal static class Waiting
{
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    /// <summary>Reads until the end of stream.</summary>
    public static async Task<byte[]> ReadToEnd(Func<Memory<byte>, ValueTask<int>> receive)
    {
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await receive(buffer)) > 0) received.Write(buffer, 0, n);
        return received.ToArray();
    }

    /// <summary>Waits for a condition the real kernel and the loop reach on their own time (hang guard only).</summary>
    public static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + HangGuard;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not reached within the hang guard");
            await Task.Delay(20);
        }
    }
}
