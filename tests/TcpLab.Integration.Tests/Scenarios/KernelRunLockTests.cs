using TcpLab.Lab.Kernel;
using TcpLab.Stack.Wire;

namespace TcpLab.Integration.Tests.Scenarios;

/// <summary>
/// Runs against the kernel exclude each other by address (the state tracepoint tells runs apart
/// only by address), so a run on other addresses goes ahead while one that shares an address waits.
/// </summary>
public sealed class KernelRunLockTests
{
    // Addresses no scenario or other test uses.
    private static readonly Ipv4Address A = Ipv4Address.Parse("10.253.0.1");
    private static readonly Ipv4Address B = Ipv4Address.Parse("10.253.0.2");
    private static readonly Ipv4Address C = Ipv4Address.Parse("10.253.0.3");

    [KernelRunFact]
    public async Task A_run_sharing_an_address_waits_and_one_on_other_addresses_does_not()
    {
        KernelRunLock first = KernelRunLock.Acquire([B]);
        using (KernelRunLock other = KernelRunLock.Acquire([C]))
        {
            // Acquired at once: nothing in common with the first run. And a benchmark that
            // wants the machine to itself (flock on the machine lock) has to wait for both.
            Assert.Throws<IOException>(() => new FileStream("/run/tcplab-kernel-run.lock", FileMode.Open, FileAccess.Read, FileShare.None));
        }

        var waiting = new TaskCompletionSource();
        Task<KernelRunLock> sharing = Task.Run(() => KernelRunLock.Acquire([A, B], waiting: () => waiting.TrySetResult()));
        await waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(sharing.IsCompleted, "a run sharing 10.253.0.2 got its lock while the first run held it");

        // All or nothing: the waiting run does not sit on 10.253.0.1 while it waits for 10.253.0.2
        // (if it did, this would wait for it, and it for the first run: a deadlock).
        KernelRunLock third = await Task.Run(() => KernelRunLock.Acquire([A])).WaitAsync(TimeSpan.FromSeconds(30));
        first.Dispose();
        Assert.False(sharing.IsCompleted, "the waiting run got 10.253.0.1 while the third run held it");
        third.Dispose();
        using KernelRunLock second = await sharing.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
