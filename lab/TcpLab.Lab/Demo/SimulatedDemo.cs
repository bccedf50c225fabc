using TcpLab.Lab.Hosting;
using TcpLab.Lab.Simulation;
using TcpLab.Lab.Trace;
using TcpLab.Stack;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Demo;

/// <summary>
/// A first look without root: two managed hosts in simulation, a ping and a TCP exchange
/// (handshake, "helloworld", close), printed as tcpdump would show them with the reason for
/// every packet (as `tcplab dump` prints a capture), and saved as a pcapng.
/// </summary>
public static class SimulatedDemo
{
    public static async Task<int> RunAsync(SysctlOverrides sysctls, string outputDirectory, TextWriter output)
    {
        Directory.CreateDirectory(outputDirectory);
        string capturePath = Path.Combine(outputDirectory, "capture.pcapng");
        using (var capture = PcapNgWriter.Create(capturePath))
        {
            var lab = new SimulatedLab(seed: 1, WireOptions.Default with { Delay = TimeSpan.FromMilliseconds(1) }, capture: capture);
            NetworkStack client = lab.AddHost("client", Ipv4Cidr.Parse("10.0.0.1/24"), sysctls.For("client"));
            NetworkStack server = lab.AddHost("server", Ipv4Cidr.Parse("10.0.0.2/24"), sysctls.For("server"));

            for (ushort seq = 1; seq <= 3; seq++)
            {
                ushort sequence = seq;
                lab.Loop.Post(() => client.Icmp.SendEchoRequest(server.Interfaces[0].Address.Address, 0x4c41, sequence));
                lab.Loop.RunFor(TimeSpan.FromSeconds(1));
            }

            var listener = new TcpSocket(server);
            listener.Bind(8888);
            listener.Listen(128);
            Task serverApp = lab.Loop.Spawn(async () =>
            {
                using TcpSocket connection = await listener.AcceptAsync();
                var buffer = new byte[64];
                while (await connection.ReceiveAsync(buffer) > 0) { }
            });
            Task clientApp = lab.Loop.Spawn(async () =>
            {
                using var socket = new TcpSocket(client);
                await socket.ConnectAsync(server.Interfaces[0].Address.Address, 8888);
                await socket.SendAsync("helloworld"u8.ToArray());
            });
            lab.Loop.RunFor(TimeSpan.FromSeconds(120));
            await Task.WhenAll(clientApp, serverApp);
        }

        int printed = CaptureDump.Run(capturePath, new DumpOptions(RelativeTime: true), output, output);
        if (printed != 0) return printed;
        output.WriteLine();
        output.WriteLine($"capture: {capturePath} (open it with Wireshark, `tshark -r {capturePath}` or `tcplab dump {capturePath}`)");
        return 0;
    }
}
