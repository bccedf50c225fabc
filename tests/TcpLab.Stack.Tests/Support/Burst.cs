using TcpLab.Stack.Link.Faults;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Support;

/// <summary>
/// A loss-recovery experiment in virtual time with exact timers (lab.hz=0): the server sends
/// data to a client <c>delay</c> away (RTT 2 × delay), and chosen data frames are lost on their
/// way to the client (counted in arrival order, so a retransmission counts as a new frame).
/// The server is the sender because its first RTT sample, from the SYN-ACK, is exactly 2 ×
/// delay (the client's SYN also waits for ARP), so srtt = 2 × delay and RTO = srtt + 200 ms.
/// </summary>
public sealed class Burst
{
    private int _dataArrivals;

    public Burst(TimeSpan delay, Action<Sysctls>? sysctls = null, int[]? lost = null, IReadOnlyList<FaultRule>? faults = null,
                 TcpSocketOptions? serverOptions = null, TcpSocketOptions? clientOptions = null)
    {
        Delay = delay;
        var drop = new HashSet<int>(lost ?? []);
        void Configure(Sysctls s)
        {
            s.LabHz = 0;
            sysctls?.Invoke(s);
        }
        Net = new TwoHosts(client: Configure, server: Configure, wire: WireOptions.Default with { Delay = delay }, faults: faults,
                           clientLink: link => new FilterLink(link)
                           {
                               DropIncoming = v => v.PayloadLength > 0 && drop.Contains(++_dataArrivals),
                               DropOutgoing = v => ClientSilenced && v.IsTcp,
                           });
        (Client, Server) = Connected.Open(Net, clientOptions: clientOptions, serverOptions: serverOptions ?? new TcpSocketOptions { SendBufferSize = 200_000 });
        Net.RunUntil(1);
    }

    public TimeSpan Delay { get; }
    /// <summary>When set, no TCP segment the client sends reaches the wire (its TCP vanished; ARP still answers).</summary>
    public bool ClientSilenced { get; set; }
    public double Rtt => 2 * Delay.TotalSeconds;
    public TwoHosts Net { get; }
    public TcpConnection Client { get; }
    public TcpConnection Server { get; }

    /// <summary>Writes <paramref name="segments"/> full segments at the server now.</summary>
    public byte[] Send(int segments)
    {
        var data = new byte[segments * Server.SendMss];
        new DeterministicRandom((ulong)segments).NextBytes(data);
        Assert.Equal(data.Length, Server.Write(data));
        return data;
    }

    /// <summary>The server's data segments (first transmissions and retransmissions) as they left it.</summary>
    public List<LoggedSegment> ServerData() => Net.Log.From(TwoHosts.ServerIp).Where(s => s.Length > 0).ToList();

    /// <summary>The client's ACKs after t = 1 s (the handshake's is not among them), in order.</summary>
    public List<LoggedSegment> ClientAcks() => Net.Log.From(TwoHosts.ClientIp).Where(s => s.Length == 0 && s.At.TotalSeconds >= 1).ToList();

    /// <summary>Retransmissions (every data segment whose sequence was sent before).</summary>
    public List<LoggedSegment> Retransmissions()
    {
        var seen = new HashSet<uint>();
        return ServerData().Where(s => !seen.Add(s.Seq)).ToList();
    }
}
