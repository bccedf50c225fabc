using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// A received TCP segment after validation: its header with parsed options, its payload (valid
/// only during processing) and the sequence space it occupies (Linux's TCP_SKB_CB seq/end_seq).
/// </summary>
internal readonly ref struct Segment
{
    public Segment(in TcpHeader header, ReadOnlySpan<byte> payload, Instant arrival, int gsoSize = 0)
    {
        Header = header;
        Payload = payload;
        Arrival = arrival;
        GsoSize = gsoSize;
    }

    public readonly TcpHeader Header;
    public ReadOnlySpan<byte> Payload { get; }
    public Instant Arrival { get; }
    /// <summary>For a GRO superframe (several wire segments received as one), the size of each; else 0.</summary>
    public int GsoSize { get; }

    public TcpFlags Flags => Header.Flags;
    public bool Syn => (Header.Flags & TcpFlags.Syn) != 0;
    public bool Fin => (Header.Flags & TcpFlags.Fin) != 0;
    public bool Rst => (Header.Flags & TcpFlags.Rst) != 0;
    public bool HasAck => (Header.Flags & TcpFlags.Ack) != 0;
    public bool Psh => (Header.Flags & TcpFlags.Psh) != 0;

    public SeqNum Seq => new(Header.SequenceNumber);
    public SeqNum Ack => new(Header.AcknowledgmentNumber);
    /// <summary>Sequence space consumed: payload plus one each for SYN and FIN.</summary>
    public SeqNum EndSeq => Seq + (Payload.Length + (Syn ? 1 : 0) + (Fin ? 1 : 0));
    public int Length => Payload.Length;
    public ushort Window => Header.Window;
}
