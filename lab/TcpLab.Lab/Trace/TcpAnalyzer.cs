using System.Globalization;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Trace;

/// <summary>
/// Wireshark's tcp.analysis flags (the TCP_A_* bits of epan/dissectors/packet-tcp.c, same values).
/// </summary>
[Flags]
public enum TcpAnalysisFlags : ushort
{
    None = 0,
    /// <summary>tcp.analysis.retransmission: data (or SYN/FIN) below the highest sequence seen.</summary>
    Retransmission = 0x0001,
    /// <summary>tcp.analysis.lost_segment: "Previous segment not captured", a hole before this segment.</summary>
    LostSegment = 0x0002,
    /// <summary>tcp.analysis.ack_lost_segment: "ACKed unseen segment", an ACK beyond the data seen.</summary>
    AckedUnseenSegment = 0x0004,
    /// <summary>tcp.analysis.keep_alive: 0 or 1 byte one below the next expected sequence number.</summary>
    KeepAlive = 0x0008,
    /// <summary>tcp.analysis.duplicate_ack: a pure ACK repeating the previous one, window included.</summary>
    DuplicateAck = 0x0010,
    /// <summary>tcp.analysis.zero_window: the sender advertises a window of 0.</summary>
    ZeroWindow = 0x0020,
    /// <summary>tcp.analysis.zero_window_probe: 1 byte at the next sequence number into a zero window.</summary>
    ZeroWindowProbe = 0x0040,
    /// <summary>tcp.analysis.zero_window_probe_ack: the answer to a zero-window probe, window still 0.</summary>
    ZeroWindowProbeAck = 0x0080,
    /// <summary>tcp.analysis.keep_alive_ack: the answer to a keep-alive.</summary>
    KeepAliveAck = 0x0100,
    /// <summary>tcp.analysis.out_of_order: below the highest sequence, soon after it (within the iRTT).</summary>
    OutOfOrder = 0x0200,
    /// <summary>tcp.analysis.fast_retransmission: a retransmission right after two or more duplicate ACKs for it.</summary>
    FastRetransmission = 0x0400,
    /// <summary>tcp.analysis.window_update: a pure ACK that only changes the window.</summary>
    WindowUpdate = 0x0800,
    /// <summary>tcp.analysis.window_full: data up to the right edge of the peer's window.</summary>
    WindowFull = 0x1000,
    /// <summary>tcp.analysis.reused_ports: a SYN on a 4-tuple already seen.</summary>
    ReusedPorts = 0x2000,
    /// <summary>tcp.analysis.spurious_retransmission: a retransmission of data the peer has already ACKed.</summary>
    SpuriousRetransmission = 0x4000,
}

/// <summary>
/// What <see cref="TcpAnalyzer"/> found in one frame: Wireshark's analysis flags and, for a
/// duplicate ACK, its number and the frame it duplicates (tcp.analysis.duplicate_ack_num and
/// tcp.analysis.duplicate_ack_frame).
/// </summary>
public readonly record struct TcpFrameAnalysis(TcpAnalysisFlags Flags, int DuplicateAckNumber, long DuplicateAckFrame)
{
    /// <summary>
    /// Labels in the order Wireshark's Info column shows them: tcp_print_sequence_number_analysis
    /// prepends each in turn (col_prepend_fence_fstr), so the column reads them last-printed first.
    /// Each is written "[TCP NAME]"; the duplicate ACK's names its frame, "[TCP Dup ACK 12#1]".
    /// </summary>
    private static readonly (TcpAnalysisFlags Flag, string Name)[] InfoOrder =
    [
        (TcpAnalysisFlags.ZeroWindowProbeAck, "ZeroWindowProbeAck"),
        (TcpAnalysisFlags.ZeroWindow, "ZeroWindow"),
        (TcpAnalysisFlags.ZeroWindowProbe, "ZeroWindowProbe"),
        (TcpAnalysisFlags.DuplicateAck, "Dup ACK"),
        (TcpAnalysisFlags.KeepAliveAck, "Keep-Alive ACK"),
        (TcpAnalysisFlags.KeepAlive, "Keep-Alive"),
        (TcpAnalysisFlags.WindowFull, "Window Full"),
        (TcpAnalysisFlags.WindowUpdate, "Window Update"),
        (TcpAnalysisFlags.AckedUnseenSegment, "ACKed unseen segment"),
        (TcpAnalysisFlags.LostSegment, "Previous segment not captured"),
        (TcpAnalysisFlags.OutOfOrder, "Out-Of-Order"),
        (TcpAnalysisFlags.SpuriousRetransmission, "Spurious Retransmission"),
        (TcpAnalysisFlags.FastRetransmission, "Fast Retransmission"),
        (TcpAnalysisFlags.Retransmission, "Retransmission"),
        (TcpAnalysisFlags.ReusedPorts, "Port numbers reused"),
    ];

    /// <summary>Every label's name, as the Info column writes it between "[TCP " and "]" (the duplicate ACK's without its numbers).</summary>
    public static IEnumerable<string> Names => InfoOrder.Select(l => l.Name);

    /// <summary>The flag of a label's name ("Dup ACK", "Spurious Retransmission"), case-insensitive.</summary>
    public static bool TryParseName(string name, out TcpAnalysisFlags flag)
    {
        flag = InfoOrder.FirstOrDefault(l => string.Equals(l.Name, name, StringComparison.OrdinalIgnoreCase)).Flag;
        return flag != TcpAnalysisFlags.None;
    }

    /// <summary>The name of one flag's label.</summary>
    public static string NameOf(TcpAnalysisFlags flag) => InfoOrder.First(l => l.Flag == flag).Name;

    /// <summary>The labels as Wireshark's Info column writes them, in its order, e.g. "[TCP Dup ACK 12#1]".</summary>
    public IReadOnlyList<string> Labels()
    {
        if (Flags == TcpAnalysisFlags.None) return [];
        var labels = new List<string>();
        foreach ((TcpAnalysisFlags flag, string name) in InfoOrder)
        {
            if ((Flags & flag) == 0) continue;
            labels.Add(flag == TcpAnalysisFlags.DuplicateAck
                ? string.Create(CultureInfo.InvariantCulture, $"[TCP Dup ACK {DuplicateAckFrame}#{DuplicateAckNumber}]")
                : $"[TCP {name}]");
        }
        return labels;
    }
}

/// <summary>
/// Wireshark's TCP sequence analysis (packet-tcp.c: tcp_analyze_sequence_number and the parts of
/// dissect_tcp around it), with Wireshark's default preferences: sequence analysis on, window
/// scaling learned from the SYNs ("default_window_scaling: Not known"), fast retransmission
/// checked before out-of-order ("fastrt_supersedes_ooo: TRUE"). Feed it every frame of a capture
/// in order; it keeps the state of each conversation, so one analyzer serves one capture.
/// <para>
/// The rules, their order and their quirks are Wireshark's, on purpose: the point is to label a
/// frame exactly as Wireshark would, so a lab capture reads the same here and in Wireshark.
/// Comparisons of sequence numbers wrap like its GT_SEQ/LT_SEQ macros; a next sequence number
/// of 0 means "none seen yet", as it does there. Wireshark keeps per-segment lists for RTT and
/// bytes in flight; no label depends on them, so they are not kept here. IP fragments are not
/// analyzed (Wireshark analyzes the reassembled datagram in the last fragment's frame).
/// </para>
/// </summary>
public sealed class TcpAnalyzer
{
    /// <summary>win_scale before any SYN was seen.</summary>
    private const int WindowScaleUnknown = -1;

    /// <summary>win_scale once the handshake shows scaling is not in use.</summary>
    private const int NoWindowScaling = -2;

    /// <summary>RFC 7323 2.3: a larger shift is taken as 14 (dissect_tcpopt_wscale).</summary>
    private const int MaxWindowShift = 14;

    /// <summary>A fast retransmission follows the last duplicate ACK within 20 ms.</summary>
    private const long FastRetransmissionNanoseconds = 20_000_000;

    /// <summary>Out-of-order window when the handshake gave no initial RTT: 3 ms.</summary>
    private const long DefaultOutOfOrderNanoseconds = 3_000_000;

    private readonly Dictionary<ConversationKey, Conversation> _conversations = [];

    /// <summary>
    /// Analyzes the TCP segment in <paramref name="ipv4Datagram"/>; no flags for anything else.
    /// </summary>
    /// <param name="frameNumber">1-based position of the frame in the capture, counting every frame.</param>
    /// <param name="timestamp">Capture time in nanoseconds since the Unix epoch.</param>
    public TcpFrameAnalysis Analyze(long frameNumber, long timestamp, ReadOnlySpan<byte> ipv4Datagram)
    {
        if (Ipv4Packet.TryParse(ipv4Datagram, out Ipv4Packet ip, verifyChecksum: false) != WireError.None
            || ip.Protocol != IpProtocol.Tcp || ip.IsFragment
            || TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) != WireError.None)
            return default;

        var key = ConversationKey.Of(ip.Source, tcp.SourcePort, ip.Destination, tcp.DestinationPort, out bool fromFirst);
        if (!_conversations.TryGetValue(key, out Conversation? conversation))
            _conversations[key] = conversation = new Conversation();

        var segment = new Segment(frameNumber, timestamp, tcp.SequenceNumber, tcp.AcknowledgmentNumber,
            (uint)tcp.Payload.Length, tcp.Flags, tcp.Window);
        var result = new Result();
        conversation = CheckReusedPorts(key, conversation, fromFirst, segment, ref result);
        Flow sender = conversation.Sender(fromFirst), receiver = conversation.Sender(!fromFirst);

        AnalyzeSequenceNumber(conversation, sender, receiver, segment, ref result);
        LearnFromHandshake(conversation, sender, receiver, segment, tcp.OptionBytes);
        return new TcpFrameAnalysis(result.Flags, result.DuplicateAckNumber, result.DuplicateAckFrame);
    }

    /// <summary>
    /// dissect_tcp, before the analysis: a SYN with a new ISN on a known 4-tuple starts a new
    /// conversation, flagged as reused ports, as is a SYN-ACK with a new ISN. A SYN repeating the
    /// ISN is a retransmission: nextseq goes back to the contiguous edge, in case a RST moved it
    /// (issue 17616). Wireshark 4.0 does not flag that one as reused ports (some later sources do).
    /// </summary>
    private Conversation CheckReusedPorts(ConversationKey key, Conversation conversation, bool fromFirst, in Segment s, ref Result result)
    {
        Flow sender = conversation.Sender(fromFirst);
        if (!sender.BaseSequenceKnown) return conversation;
        if ((s.Flags & (TcpFlags.Syn | TcpFlags.Ack)) == TcpFlags.Syn)
        {
            if (s.Seq == sender.BaseSequence)
            {
                sender.NextSeq = sender.MaxSeqToBeAcked;
                return conversation;
            }
            result.Flags |= TcpAnalysisFlags.ReusedPorts;
            return _conversations[key] = new Conversation();
        }
        if ((s.Flags & (TcpFlags.Syn | TcpFlags.Ack)) == (TcpFlags.Syn | TcpFlags.Ack) && s.Seq != sender.BaseSequence)
        {
            result.Flags |= TcpAnalysisFlags.ReusedPorts;
            sender.BaseSequence = s.Seq;
        }
        return conversation;
    }

    /// <summary>tcp_analyze_sequence_number: the checks in Wireshark's order, then what it remembers.</summary>
    private static void AnalyzeSequenceNumber(Conversation conversation, Flow sender, Flow receiver, in Segment s, ref Result result)
    {
        // Relative numbering starts at the SYN, or one before the first segment seen.
        if (!sender.BaseSequenceKnown)
        {
            sender.BaseSequence = s.Has(TcpFlags.Syn) ? s.Seq : s.Seq - 1;
            sender.BaseSequenceKnown = true;
        }
        if (!receiver.BaseSequenceKnown && s.Has(TcpFlags.Ack))
        {
            receiver.BaseSequence = s.Ack - 1;
            receiver.BaseSequenceKnown = true;
        }

        ClassifyForward(sender, receiver, s, ref result);
        if (s.Ack != sender.LastAck)
        {
            sender.LastNonDuplicateAckFrame = s.Frame;
            sender.DuplicateAcks = 0;
        }
        CheckAckedUnseenSegment(sender, receiver, s, ref result);
        ClassifyRetransmission(conversation, sender, receiver, s, ref result);
        Remember(sender, s, result.Flags);
    }

    /// <summary>The checks up to Wireshark's "finished_fwd" label; the probe and the two answers end them early.</summary>
    private static void ClassifyForward(Flow sender, Flow receiver, in Segment s, ref Result result)
    {
        bool control = s.Has(TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst);

        // 1 byte at the next sequence number while the peer's window is closed.
        if (s.Length == 1 && s.Seq == sender.NextSeq && receiver.Window == 0)
        {
            result.Flags |= TcpAnalysisFlags.ZeroWindowProbe;
            return;
        }
        if (s.Window == 0 && !control) result.Flags |= TcpAnalysisFlags.ZeroWindow;

        // A hole before this segment; RSTs are exempt, since a RST may carry any sequence number.
        if (sender.NextSeq != 0 && SequenceGreater(s.Seq, sender.NextSeq) && !s.Has(TcpFlags.Rst))
            result.Flags |= TcpAnalysisFlags.LostSegment;

        if (s.Length <= 1 && s.Seq == sender.NextSeq - 1 && !control)
            result.Flags |= TcpAnalysisFlags.KeepAlive;

        // The same pure ACK as before: a new window makes it an update, an unchanged one an answer or a duplicate.
        bool repeatsAck = s.Length == 0 && s.Seq == sender.NextSeq && s.Ack == sender.LastAck && !control;
        if (repeatsAck && s.Window != 0 && s.Window != sender.Window)
            result.Flags |= TcpAnalysisFlags.WindowUpdate;

        if (s.Length > 0 && receiver.WindowScale != WindowScaleUnknown && !control
            && s.Seq + s.Length == receiver.LastAck + receiver.ScaledWindow)
            result.Flags |= TcpAnalysisFlags.WindowFull;

        if (!repeatsAck || s.Window != sender.Window) return;
        if (s.Window != 0 && (receiver.LastSegmentFlags & TcpAnalysisFlags.KeepAlive) != 0)
        {
            result.Flags |= TcpAnalysisFlags.KeepAliveAck;
            return;
        }
        if (s.Window == 0 && (receiver.LastSegmentFlags & TcpAnalysisFlags.ZeroWindowProbe) != 0)
        {
            result.Flags |= TcpAnalysisFlags.ZeroWindowProbeAck;
            return;
        }
        if (s.Window != 0)
        {
            // -1 (set by an ACKed unseen segment) restarts the count at 1.
            sender.DuplicateAcks = sender.DuplicateAcks == -1 ? 1 : sender.DuplicateAcks + 1;
            result.Flags |= TcpAnalysisFlags.DuplicateAck;
            result.DuplicateAckNumber = sender.DuplicateAcks;
            result.DuplicateAckFrame = sender.LastNonDuplicateAckFrame;
        }
    }

    /// <summary>
    /// An ACK beyond the highest contiguous data seen the other way: some went by uncaptured.
    /// Flagged once per hole: the boundary jumps ahead, or the peer's duplicate-ACK count is set
    /// to -1 so that a stalled flow of pure ACKs does not flag it again.
    /// </summary>
    private static void CheckAckedUnseenSegment(Flow sender, Flow receiver, in Segment s, ref Result result)
    {
        if (receiver.MaxSeqToBeAcked == 0 || !SequenceGreater(s.Ack, receiver.MaxSeqToBeAcked) || !s.Has(TcpFlags.Ack)) return;
        // A plain comparison in Wireshark, not a wrapping one.
        if (receiver.MaxSeqToBeAcked > receiver.NextSeq)
        {
            receiver.MaxSeqToBeAcked = receiver.NextSeq;
            result.Flags |= TcpAnalysisFlags.AckedUnseenSegment;
        }
        else
        {
            if (receiver.DuplicateAcks == 0) result.Flags |= TcpAnalysisFlags.AckedUnseenSegment;
            receiver.DuplicateAcks = -1;
        }
    }

    /// <summary>
    /// A segment with data (or SYN/FIN) that does not advance the sequence: spurious if the peer
    /// has ACKed all of it, else fast (after 2+ duplicate ACKs for it, within 20 ms), else
    /// out-of-order (within the initial RTT of the highest segment), else a plain retransmission.
    /// </summary>
    private static void ClassifyRetransmission(Conversation conversation, Flow sender, Flow receiver, in Segment s, ref Result result)
    {
        if (s.Length == 0 && !s.Has(TcpFlags.Syn | TcpFlags.Fin)) return;
        if ((result.Flags & TcpAnalysisFlags.KeepAlive) != 0) return;
        bool notAdvanced = sender.NextSeq != 0 && SequenceLess(s.Seq, sender.NextSeq);
        // One byte below nextseq with more data: the byte was a zero-window probe, the rest is new.
        if (s.Length > 1 && sender.NextSeq - 1 == s.Seq) notAdvanced = false;

        if (s.Length > 0 && receiver.LastAck != 0 && SequenceLessOrEqual(s.Seq + s.Length, receiver.LastAck))
        {
            result.Flags |= TcpAnalysisFlags.SpuriousRetransmission;
            return;
        }
        if (notAdvanced && receiver.DuplicateAcks >= 2 && receiver.LastAck == s.Seq
            && Elapsed(receiver.LastAckTime, s.Timestamp) < FastRetransmissionNanoseconds)
        {
            result.Flags |= TcpAnalysisFlags.FastRetransmission;
            return;
        }
        ulong outOfOrderWindow = conversation.FirstRtt == 0 ? DefaultOutOfOrderNanoseconds : (ulong)conversation.FirstRtt;
        uint end = s.Seq + s.Length + (s.Has(TcpFlags.Syn | TcpFlags.Fin) ? 1u : 0u);
        if (notAdvanced && Elapsed(sender.NextSeqTime, s.Timestamp) < outOfOrderWindow && sender.NextSeq != end)
        {
            result.Flags |= TcpAnalysisFlags.OutOfOrder;
            return;
        }
        if (notAdvanced) result.Flags |= TcpAnalysisFlags.Retransmission;
    }

    /// <summary>The end of tcp_analyze_sequence_number: highest sequence, contiguous edge, last ACK and window, flags.</summary>
    private static void Remember(Flow sender, in Segment s, TcpAnalysisFlags flags)
    {
        uint nextSeq = s.Seq + s.Length + (s.Has(TcpFlags.Syn | TcpFlags.Fin) ? 1u : 0u);
        // A zero-window probe's byte is not really sent yet: it moves neither edge.
        bool probe = (flags & TcpAnalysisFlags.ZeroWindowProbe) != 0;
        if ((SequenceGreater(nextSeq, sender.NextSeq) || sender.NextSeq == 0) && !probe)
        {
            sender.NextSeq = nextSeq;
            sender.NextSeqTime = s.Timestamp;
        }
        if ((s.Seq == sender.MaxSeqToBeAcked || sender.MaxSeqToBeAcked == 0) && !probe)
            sender.MaxSeqToBeAcked = sender.NextSeq;
        sender.Window = s.Window;
        sender.LastAck = s.Ack;
        sender.LastAckTime = s.Timestamp;
        sender.LastSegmentFlags = flags;
    }

    /// <summary>
    /// dissect_tcp after the analysis: the SYN time and the initial RTT (the first pure ACK after a
    /// SYN), the first-ACK mark that keeps the SYN's unscaled window unscaled, the window scale
    /// option, and verify_tcp_window_scaling.
    /// </summary>
    private static void LearnFromHandshake(Conversation conversation, Flow sender, Flow receiver, in Segment s, ReadOnlySpan<byte> options)
    {
        bool syn = s.Has(TcpFlags.Syn), ack = s.Has(TcpFlags.Ack);
        if (syn)
        {
            if (!ack) conversation.MostRecentSynTime = s.Timestamp;
            sender.IsFirstAck = true;
        }
        if (!syn && ack)
        {
            if (conversation.MostRecentSynTime != 0 && conversation.FirstRtt == 0)
                conversation.FirstRtt = s.Timestamp - conversation.MostRecentSynTime;
            sender.IsFirstAck = false;
        }
        if (FindWindowShift(options) is { } shift) sender.WindowScale = Math.Min(shift, MaxWindowShift);
        if (!syn) return;
        if (sender.WindowScale == WindowScaleUnknown)
        {
            // A SYN or SYN-ACK without the option: neither side scales.
            sender.WindowScale = NoWindowScaling;
            receiver.WindowScale = NoWindowScaling;
        }
        else if (ack && receiver.WindowScale == NoWindowScaling)
        {
            // Scaling offered in the SYN-ACK but not in the SYN is not in use.
            sender.WindowScale = NoWindowScaling;
        }
    }

    /// <summary>The shift of a well-formed window scale option, walking the options as tcp_dissect_options does.</summary>
    private static int? FindWindowShift(ReadOnlySpan<byte> options)
    {
        int? shift = null;
        int i = 0;
        while (i < options.Length)
        {
            byte kind = options[i];
            if (kind == (byte)TcpOptionKind.EndOfList) break;
            if (kind == (byte)TcpOptionKind.NoOperation)
            {
                i++;
                continue;
            }
            if (i + 1 >= options.Length || options[i + 1] < 2 || i + options[i + 1] > options.Length) break;
            int length = options[i + 1];
            if (kind == (byte)TcpOptionKind.WindowScale && length == 3) shift = options[i + 2];
            i += length;
        }
        return shift;
    }

    /// <summary>Nanoseconds from <paramref name="from"/> to <paramref name="to"/> as Wireshark's unsigned arithmetic has it: going back in time is a huge span.</summary>
    private static ulong Elapsed(long from, long to) => unchecked((ulong)(to - from));

    private static bool SequenceGreater(uint a, uint b) => (int)(b - a) < 0;

    private static bool SequenceLess(uint a, uint b) => (int)(a - b) < 0;

    private static bool SequenceLessOrEqual(uint a, uint b) => (int)(a - b) <= 0;

    /// <summary>The fields of a segment the analysis reads; the window as sent, unscaled.</summary>
    private readonly record struct Segment(long Frame, long Timestamp, uint Seq, uint Ack, uint Length, TcpFlags Flags, ushort Window)
    {
        public bool Has(TcpFlags any) => (Flags & any) != 0;
    }

    /// <summary>The per-frame outcome being built (Wireshark's struct tcp_acked).</summary>
    private struct Result
    {
        public TcpAnalysisFlags Flags;
        public int DuplicateAckNumber;
        public long DuplicateAckFrame;
    }

    /// <summary>One direction of a conversation (tcp_flow_t with its tcp_analyze_seq_flow_info_t).</summary>
    private sealed class Flow
    {
        public bool BaseSequenceKnown;
        public uint BaseSequence;
        public int WindowScale = WindowScaleUnknown;
        /// <summary>The last window sent, unscaled; none yet reads as the largest value, as in Wireshark.</summary>
        public uint Window = uint.MaxValue;
        /// <summary>Set by a SYN, cleared by the first ACK after it: until then the window is not scaled.</summary>
        public bool IsFirstAck;
        public TcpAnalysisFlags LastSegmentFlags;
        /// <summary>The highest sequence number sent plus one; 0 until data was seen.</summary>
        public uint NextSeq;
        public long NextSeqTime;
        /// <summary>The end of the contiguous data seen: what the peer may ACK without having seen more.</summary>
        public uint MaxSeqToBeAcked;
        public uint LastAck;
        public long LastAckTime;
        /// <summary>Duplicate ACKs sent in a row; -1 after an ACK for unseen data.</summary>
        public int DuplicateAcks;
        public long LastNonDuplicateAckFrame;

        /// <summary>The window the peer may fill, as the Window Full check computes it (shift wraps like C's).</summary>
        public uint ScaledWindow => unchecked(Window << (IsFirstAck || WindowScale == NoWindowScaling ? 0 : WindowScale));
    }

    /// <summary>Both directions of one TCP connection, and the handshake times it shares.</summary>
    private sealed class Conversation
    {
        private readonly Flow _first = new(), _second = new();

        public long MostRecentSynTime;
        /// <summary>SYN to the ACK completing the handshake: the out-of-order window; 0 until known.</summary>
        public long FirstRtt;

        public Flow Sender(bool fromFirst) => fromFirst ? _first : _second;
    }

    /// <summary>A 4-tuple with its endpoints in a fixed order, so both directions find the same conversation.</summary>
    private readonly record struct ConversationKey(Ipv4Address FirstAddress, ushort FirstPort, Ipv4Address SecondAddress, ushort SecondPort)
    {
        public static ConversationKey Of(Ipv4Address source, ushort sourcePort, Ipv4Address destination, ushort destinationPort, out bool fromFirst)
        {
            fromFirst = (source.Value, sourcePort).CompareTo((destination.Value, destinationPort)) <= 0;
            return fromFirst
                ? new ConversationKey(source, sourcePort, destination, destinationPort)
                : new ConversationKey(destination, destinationPort, source, sourcePort);
        }
    }
}
