using System.CommandLine;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TcpLab.Lab.Hosting;
using TcpLab.Lab.Namespaces;
using TcpLab.Lab.Services;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Cli;

/// <summary>`tcplab serve` and `tcplab connect`: the managed stack on a TAP device, facing the Linux kernel.</summary>
public static class TapCommands
{
    private static readonly Option<string?> Netns = new("--netns") { Description = "Use this existing network namespace (left in place on exit) instead of a new lab-owned one" };
    private static readonly Option<string> Address = new("--address") { Description = "The managed stack's address", DefaultValueFactory = _ => "10.77.0.2/24" };
    private static readonly Option<string> PeerAddress = new("--peer-address") { Description = "The kernel's address on its side of the TAP", DefaultValueFactory = _ => "10.77.0.1/24" };
    private static readonly Option<int> Mtu = new("--mtu") { Description = "MTU of the TAP link", DefaultValueFactory = _ => 1500 };
    private static readonly Option<string?> Capture = new("--capture") { Description = "Write every frame on the TAP to this pcapng file" };
    private static readonly Option<string[]> Faults = new("--fault") { Description = "A fault rule on the TAP (e.g. \"drop tcp=S nth=1\"); repeatable", DefaultValueFactory = _ => [] };

    public static Command Serve()
    {
        var echo = new Option<ushort?>("--echo") { Description = "Run an echo server on this port" };
        var discard = new Option<ushort?>("--discard") { Description = "Run a discard server on this port" };
        var http = new Option<ushort?>("--http") { Description = "Run an HTTP server on this port: GET /bytes/N returns N bytes, byte i = i mod 251" };
        var command = new Command("serve", "Run the managed stack behind a TAP device in a network namespace until Ctrl+C or SIGTERM (needs root or CAP_NET_ADMIN)")
        {
            Netns, Address, PeerAddress, Mtu, Capture, Faults, echo, discard, http,
        };
        command.SetAction(async (result, cancellation) =>
        {
            HostApplicationBuilder builder = LabHost.CreateBuilder(LabCommandLine.Common(result));
            var settings = new ServeSettings(Attachment(result, builder), result.GetValue(echo), result.GetValue(discard), result.GetValue(http), result.GetValue(Capture));
            builder.Services.AddSingleton(settings);
            builder.Services.AddHostedService<ServeService>();
            using IHost host = builder.Build();
            await host.RunAsync(cancellation);
            return ServeService.ExitCode;
        });
        return command;
    }

    public static Command Connect()
    {
        var port = new Argument<ushort>("port") { Description = "Port of the Linux server on the kernel side of the TAP" };
        var server = new Option<string?>("--server") { Description = "Start this Linux server in the namespace first, e.g. \"ncat -lk 8080 -e /bin/cat\" (ended afterwards)" };
        var send = new Option<string?>("--send") { Description = "Text to send" };
        var bytes = new Option<int?>("--bytes") { Description = "Send this many bytes (byte i = i mod 251)" };
        var command = new Command("connect", "Connect the managed stack, as a client, to a Linux server in the namespace (needs root or CAP_NET_ADMIN)")
        {
            port, Netns, Address, PeerAddress, Mtu, Capture, Faults, server, send, bytes,
        };
        command.SetAction(async (result, cancellation) =>
        {
            HostApplicationBuilder builder = LabHost.CreateBuilder(LabCommandLine.Common(result));
            TapAttachmentOptions options = Attachment(result, builder);
            using PcapNgWriter? capture = OpenCapture(result.GetValue(Capture));
            using var lab = TapAttachment.Create(options with { Capture = capture });
            Process? linuxServer = null;
            try
            {
                if (result.GetValue(server) is { } commandLine)
                {
                    string[] words = commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    linuxServer = lab.Namespace.StartProcess(words[0], words[1..]);
                    WaitUntilListening(lab, result.GetValue(port), linuxServer);
                }
                byte[] payload = result.GetValue(bytes) is { } n
                    ? Enumerable.Range(0, n).Select(i => StackServices.PatternByte(i)).ToArray()
                    : Encoding.UTF8.GetBytes(result.GetValue(send) ?? "");
                return await Exchange(lab, options.KernelAddress.Address, result.GetValue(port), payload, cancellation);
            }
            finally
            {
                if (linuxServer is { HasExited: false }) linuxServer.Kill(entireProcessTree: true);
                linuxServer?.Dispose();
            }
        });
        return command;
    }

    private static TapAttachmentOptions Attachment(ParseResult result, HostApplicationBuilder builder)
    {
        var overrides = SysctlOverrides.FromConfiguration(builder.Configuration).AddCommandLine(LabCommandLine.Common(result).Sets);
        return new TapAttachmentOptions
        {
            ManagedAddress = ParseCidr(result.GetValue(Address)!, "--address"),
            KernelAddress = ParseCidr(result.GetValue(PeerAddress)!, "--peer-address"),
            Mtu = result.GetValue(Mtu),
            ExistingNamespace = result.GetValue(Netns),
            Sysctls = overrides.For("managed"),
            Faults = (result.GetValue(Faults) ?? []).Select(FaultRule.Parse).ToList(),
        };
    }

    private static Ipv4Cidr ParseCidr(string text, string option) =>
        Ipv4Cidr.TryParse(text, out Ipv4Cidr cidr) ? cidr : throw new ArgumentException($"{option} {text}: expected an address with prefix, like 10.77.0.2/24");

    internal static PcapNgWriter? OpenCapture(string? path) => path is null ? null : PcapNgWriter.Create(path);

    /// <summary>Polls `ss -ltn` in the namespace until the server listens (or gives up after 5 s).</summary>
    private static void WaitUntilListening(TapAttachment lab, ushort port, Process server)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(5))
        {
            if (server.HasExited) throw new InvalidOperationException($"the Linux server exited with code {server.ExitCode}: {server.StandardError.ReadToEnd().Trim()}");
            if (lab.Namespace.Exec("ss", "-Hltn", $"sport = :{port}").StandardOutput.Contains("LISTEN", StringComparison.Ordinal)) return;
            Thread.Sleep(50);
        }
        throw new TimeoutException($"nothing listens on port {port} in {lab.NamespaceName} after 5 s");
    }

    private static async Task<int> Exchange(TapAttachment lab, Ipv4Address server, ushort port, byte[] payload, CancellationToken cancellation)
    {
        using var socket = new TcpSocket(lab.Stack);
        await socket.ConnectAsync(server, port, cancellation);
        Console.WriteLine($"connected {socket.Tuple}");
        await socket.SendAsync(payload, cancellation);
        socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        int n;
        while ((n = await socket.ReceiveAsync(buffer, timeout.Token)) > 0) received.Write(buffer, 0, n);
        Console.WriteLine($"sent {payload.Length} bytes, received {received.Length} bytes");
        if (received.Length > 0 && received.Length <= 1024) Console.WriteLine(Encoding.UTF8.GetString(received.ToArray()));
        return 0;
    }

    private sealed record ServeSettings(TapAttachmentOptions Attachment, ushort? Echo, ushort? Discard, ushort? Http, string? CapturePath);

    /// <summary>The serve command's work, stopped by the host on Ctrl+C or SIGTERM.</summary>
    private sealed class ServeService(ServeSettings settings, ILogger<ServeService> logger, IHostApplicationLifetime lifetime) : BackgroundService
    {
        public static int ExitCode { get; private set; }

        protected override async Task ExecuteAsync(CancellationToken stopping)
        {
            try
            {
                using PcapNgWriter? capture = OpenCapture(settings.CapturePath);
                using var lab = TapAttachment.Create(settings.Attachment with { Capture = capture });
                var services = new StackServices(lab.Stack, logger);
                var running = new List<Task>();
                if (settings.Echo is { } echo) running.Add(services.Echo(echo, stopping));
                if (settings.Discard is { } discard) running.Add(services.Discard(discard, stopping));
                if (settings.Http is { } http) running.Add(services.Http(http, stopping));
                string address = settings.Attachment.ManagedAddress.Address.ToString();
                Console.WriteLine($"tcplab: managed stack {address} behind {lab.DeviceName} in network namespace {lab.NamespaceName} " +
                                  $"(kernel side {settings.Attachment.KernelAddress}); try: ip netns exec {lab.NamespaceName} ping -c 3 {address}" +
                                  (settings.Http is { } p ? $"  or: ip netns exec {lab.NamespaceName} curl -o /dev/null http://{address}:{p}/bytes/1000000" : ""));
                try
                {
                    await Task.Delay(Timeout.Infinite, stopping);
                }
                catch (OperationCanceledException) { }
                logger.LogInformation("stopping; removing {Namespace}", lab.NamespaceName);
                await Task.WhenAll(running.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError("{Error}", e.Message);
                ExitCode = 1;
                lifetime.StopApplication();
            }
        }
    }
}
