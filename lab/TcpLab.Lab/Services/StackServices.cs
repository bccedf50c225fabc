using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using TcpLab.Stack;
using TcpLab.Stack.Sockets;
using TcpLab.Stack.Tcp;

namespace TcpLab.Lab.Services;

/// <summary>
/// Small servers on the managed stack, so the kernel on the other side of the TAP has something
/// to talk to: echo (RFC 862), discard (RFC 863) and an HTTP/1.1 server whose GET /bytes/N
/// answers N bytes where byte i is i mod 251 (a pattern that never lines up with buffer sizes).
/// </summary>
public sealed class StackServices(NetworkStack stack, ILogger logger)
{
    public Task Echo(ushort port, CancellationToken stop) => Serve(port, "echo", EchoConnection, stop);
    public Task Discard(ushort port, CancellationToken stop) => Serve(port, "discard", DiscardConnection, stop);
    public Task Http(ushort port, CancellationToken stop) => Serve(port, "http", HttpConnection, stop);

    private async Task Serve(ushort port, string name, Func<TcpSocket, CancellationToken, Task> handle, CancellationToken stop)
    {
        using var listener = new TcpSocket(stack);
        listener.Bind(port);
        listener.Listen(128);
        logger.LogInformation("{Service} listening on port {Port}", name, port);
        while (!stop.IsCancellationRequested)
        {
            TcpSocket connection;
            try
            {
                connection = await listener.AcceptAsync(stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            _ = Task.Run(async () =>
            {
                using (connection)
                {
                    try
                    {
                        await handle(connection, stop);
                    }
                    catch (TcpException e)
                    {
                        logger.LogInformation("{Service} {Peer}: {Error}", name, connection.Tuple, e.Message);
                    }
                    catch (OperationCanceledException) { }
                }
            }, CancellationToken.None);
        }
    }

    private static async Task EchoConnection(TcpSocket socket, CancellationToken stop)
    {
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, stop)) > 0) await socket.SendAsync(buffer.AsMemory(0, n), stop);
        socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
    }

    private static async Task DiscardConnection(TcpSocket socket, CancellationToken stop)
    {
        var buffer = new byte[64 * 1024];
        while (await socket.ReceiveAsync(buffer, stop) > 0) { }
    }

    /// <summary>byte i of a /bytes/N body.</summary>
    public static byte PatternByte(long i) => (byte)(i % 251);

    private static async Task HttpConnection(TcpSocket socket, CancellationToken stop)
    {
        var request = new StringBuilder();
        var buffer = new byte[8192];
        while (true)
        {
            // Read one request head (up to 16 KiB).
            int headEnd;
            while ((headEnd = request.ToString().IndexOf("\r\n\r\n", StringComparison.Ordinal)) < 0)
            {
                int n = await socket.ReceiveAsync(buffer, stop);
                if (n == 0) return;
                request.Append(Encoding.ASCII.GetString(buffer, 0, n));
                if (request.Length > 16 * 1024) { await Respond(socket, 431, "request head too large\n", close: true, stop); return; }
            }
            string head = request.ToString(0, headEnd);
            request.Remove(0, headEnd + 4);
            string[] lines = head.Split("\r\n");
            string[] start = lines[0].Split(' ');
            bool close = start.Length < 3 || start[2] == "HTTP/1.0"
                         || lines.Any(l => l.StartsWith("Connection:", StringComparison.OrdinalIgnoreCase) && l.Contains("close", StringComparison.OrdinalIgnoreCase));
            if (start.Length < 2 || start[0] != "GET")
                await Respond(socket, 405, "only GET is served\n", close, stop);
            else if (start[1].StartsWith("/bytes/", StringComparison.Ordinal)
                     && long.TryParse(start[1]["/bytes/".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out long count))
                await SendBytes(socket, count, close, stop);
            else if (start[1] == "/")
                await Respond(socket, 200, "TcpLab managed stack. GET /bytes/N returns N bytes, byte i = i mod 251.\n", close, stop);
            else
                await Respond(socket, 404, "not found; try /bytes/1000000\n", close, stop);
            if (close)
            {
                socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
                // Read until the client closes, so unread data never turns our FIN into a RST.
                while (await socket.ReceiveAsync(buffer, stop) > 0) { }
                return;
            }
        }
    }

    private static async Task Respond(TcpSocket socket, int status, string body, bool close, CancellationToken stop)
    {
        string reason = status switch { 200 => "OK", 404 => "Not Found", 405 => "Method Not Allowed", _ => "Request Header Fields Too Large" };
        string response = $"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\n{(close ? "Connection: close\r\n" : "")}\r\n{body}";
        await socket.SendAsync(Encoding.ASCII.GetBytes(response), stop);
    }

    private static async Task SendBytes(TcpSocket socket, long count, bool close, CancellationToken stop)
    {
        string head = $"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {count}\r\n{(close ? "Connection: close\r\n" : "")}\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(head), stop);
        var chunk = new byte[64 * 1024];
        for (long sent = 0; sent < count;)
        {
            int n = (int)Math.Min(chunk.Length, count - sent);
            for (int i = 0; i < n; i++) chunk[i] = PatternByte(sent + i);
            await socket.SendAsync(chunk.AsMemory(0, n), stop);
            sent += n;
        }
    }
}
