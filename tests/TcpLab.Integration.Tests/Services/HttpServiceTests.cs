using Microsoft.Extensions.Logging.Abstractions;
using TcpLab.Integration.Tests.Support;
using TcpLab.Lab.Services;

namespace TcpLab.Integration.Tests.Services;

/// <summary>What `tcplab serve --http` promises a new user: curl in the namespace gets a megabyte from the managed stack.</summary>
public class HttpServiceTests
{
    [NetAdminFact("curl")]
    public async Task Curl_in_the_namespace_downloads_a_megabyte_from_the_managed_HTTP_service()
    {
        const int length = 1_000_000;
        using var peer = new LinuxPeer(106);
        using var stop = new CancellationTokenSource();
        Task service = new StackServices(peer.Stack, NullLogger.Instance).Http(8080, stop.Token);
        string body = Path.Combine(Path.GetTempPath(), $"tcplab-http-{Environment.ProcessId}.bin");
        try
        {
            var curl = peer.Lab.Namespace.Exec("curl", "--silent", "--show-error", "--fail", "--max-time", "30",
                                               "--output", body, $"http://{peer.Network.StackAddress}:8080/bytes/{length}");

            Assert.True(curl.Succeeded, curl.Describe());
            byte[] received = await File.ReadAllBytesAsync(body);
            Assert.Equal(length, received.Length);
            for (int i = 0; i < received.Length; i++)
                if (received[i] != StackServices.PatternByte(i)) Assert.Fail($"byte {i} is {received[i]}, expected {StackServices.PatternByte(i)}");
        }
        finally
        {
            File.Delete(body);
            stop.Cancel();
            await service.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }
}
