namespace TcpLab.Stack.Tcp;

/// <summary>
/// A 32-bit TCP sequence number with modular comparison (RFC 9293 3.4): a is before b when
/// the signed distance b - a is positive, as Linux's before()/after() in include/net/tcp.h.
/// </summary>
public readonly record struct SeqNum(uint Value) : IComparable<SeqNum>
{
    public static SeqNum operator +(SeqNum s, int n) => new(unchecked(s.Value + (uint)n));
    public static SeqNum operator +(SeqNum s, uint n) => new(unchecked(s.Value + n));
    public static SeqNum operator -(SeqNum s, int n) => new(unchecked(s.Value - (uint)n));

    /// <summary>Signed distance a - b (valid while they are within 2^31 of each other).</summary>
    public static int operator -(SeqNum a, SeqNum b) => unchecked((int)(a.Value - b.Value));

    public static bool operator <(SeqNum a, SeqNum b) => a - b < 0;
    public static bool operator >(SeqNum a, SeqNum b) => a - b > 0;
    public static bool operator <=(SeqNum a, SeqNum b) => a - b <= 0;
    public static bool operator >=(SeqNum a, SeqNum b) => a - b >= 0;

    public static SeqNum Max(SeqNum a, SeqNum b) => a >= b ? a : b;
    public static SeqNum Min(SeqNum a, SeqNum b) => a <= b ? a : b;

    /// <summary>Linux's between(seq, low, high): low ≤ seq ≤ high in sequence space.</summary>
    public bool IsBetween(SeqNum low, SeqNum high) => Value - low.Value <= high.Value - low.Value;

    public int CompareTo(SeqNum other) => (this - other).CompareTo(0);

    public override string ToString() => Value.ToString();
}
