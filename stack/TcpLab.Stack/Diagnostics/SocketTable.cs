using System.Globalization;
using System.Text;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Diagnostics;

/// <summary>One row of `ss -tanoi`: state, queues, addresses, the running timer and TCP internals.</summary>
public sealed record SocketRow(
    TcpState State,
    int RecvQ,
    int SendQ,
    string Local,
    string Peer,
    string? Timer,
    string? Info);

/// <summary>
/// The socket table of one stack as `ss -tanoi` shows it: listeners (Recv-Q = accept queue,
/// Send-Q = backlog), connections, half-open requests and TIME_WAIT entries, with
/// timer:(on|keepalive|timewait|persist,remaining,retries) and the congestion control, rto/rtt/cwnd/ssthresh
/// and the scoreboard (unacked, retrans, lost, sacked, reordering) as `ss -i` prints them.
/// </summary>
public static class SocketTable
{
    public static IReadOnlyList<SocketRow> Snapshot(NetworkStack stack)
    {
        Instant now = stack.Loop.Now;
        var rows = new List<SocketRow>();
        foreach (ListenSocket l in stack.Tcp.Listeners.OrderBy(l => l.Port))
            rows.Add(new SocketRow(TcpState.Listen, l.AcceptQueueLength, l.Backlog,
                                   $"{(l.LocalAddress.IsAny ? "0.0.0.0" : l.LocalAddress.ToString())}:{l.Port}", "0.0.0.0:*", null, null));
        foreach (TcpFlow flow in stack.Tcp.Flows.OrderBy(f => f.Tuple.LocalPort).ThenBy(f => f.Tuple.RemoteAddress).ThenBy(f => f.Tuple.RemotePort))
        {
            string local = $"{flow.Tuple.LocalAddress}:{flow.Tuple.LocalPort}";
            string peer = $"{flow.Tuple.RemoteAddress}:{flow.Tuple.RemotePort}";
            switch (flow)
            {
                case TcpConnection c:
                    rows.Add(new SocketRow(c.State, c.ReceiveQueueBytes, c.SendQueueBytes, local, peer, TimerText(c.TimerInfo), InfoText(c)));
                    break;
                case RequestSocket r:
                    rows.Add(new SocketRow(TcpState.SynReceived, 0, 0, local, peer,
                                           Timer("on", r.Timer.IsArmed ? r.Timer.Deadline - now : TimeSpan.Zero, r.Timeouts), null));
                    break;
                case TimeWaitSocket tw:
                    rows.Add(new SocketRow(tw.State, 0, 0, local, peer, Timer("timewait", tw.Expires - now, 0), null));
                    break;
            }
        }
        return rows;
    }

    private static string? TimerText((string Kind, TimeSpan Remaining, int Retries)? timer) =>
        timer is { } t ? Timer(t.Kind, t.Remaining, t.Retries) : null;

    /// <summary>ss prints the remaining time in its own style: "200ms", "1.5sec", "1min58sec".</summary>
    private static string Timer(string kind, TimeSpan remaining, int retries) =>
        $"timer:({kind},{Duration(remaining)},{retries})";

    internal static string Duration(TimeSpan t)
    {
        if (t < TimeSpan.Zero) t = TimeSpan.Zero;
        if (t.TotalSeconds >= 60) return $"{(int)t.TotalMinutes}min{t.Seconds}sec";
        if (t.TotalSeconds >= 1) return t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "sec";
        return ((long)t.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + "ms";
    }

    private static string InfoText(TcpConnection c)
    {
        var info = new StringBuilder();
        if (c.TimestampsOk) info.Append("ts ");
        if (c.SackOk) info.Append("sack ");
        info.Append(c.CongestionAlgorithm).Append(' ');
        info.Append(CultureInfo.InvariantCulture, $"wscale:{c.SendWindowScale},{c.ReceiveWindowScale} ");
        info.Append(CultureInfo.InvariantCulture, $"rto:{Ms(c.Rto)} ");
        if (c.SmoothedRtt is { } rtt) info.Append(CultureInfo.InvariantCulture, $"rtt:{Ms(rtt)}/{Ms(c.RttVariation)} ");
        info.Append(CultureInfo.InvariantCulture, $"mss:{c.SendMss} cwnd:{c.CongestionWindow}");
        if (c.SlowStartThreshold != int.MaxValue) info.Append(CultureInfo.InvariantCulture, $" ssthresh:{c.SlowStartThreshold}");
        info.Append(CultureInfo.InvariantCulture, $" bytes_acked:{c.BytesAcked} bytes_received:{c.BytesReceived}");
        info.Append(CultureInfo.InvariantCulture, $" segs_out:{c.SegmentsOut} segs_in:{c.SegmentsIn}");
        if (c.PacketsOut > 0) info.Append(CultureInfo.InvariantCulture, $" unacked:{c.PacketsOut}");
        if (c.TotalRetransmits > 0) info.Append(CultureInfo.InvariantCulture, $" retrans:{c.RetransmittedPacketsOut}/{c.TotalRetransmits}");
        if (c.LostPackets > 0) info.Append(CultureInfo.InvariantCulture, $" lost:{c.LostPackets}");
        if (c.SackedPackets > 0) info.Append(CultureInfo.InvariantCulture, $" sacked:{c.SackedPackets}");
        if (c.Reordering != 3) info.Append(CultureInfo.InvariantCulture, $" reordering:{c.Reordering}");
        if (c.DsackDups > 0) info.Append(CultureInfo.InvariantCulture, $" dsack_dups:{c.DsackDups}");
        return info.ToString();

        static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture);
    }

    /// <summary>The table as `ss -tanoi` prints it (state names as ss writes them).</summary>
    public static string Format(IReadOnlyList<SocketRow> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("State      Recv-Q Send-Q Local Address:Port    Peer Address:Port");
        foreach (SocketRow r in rows)
        {
            text.Append(CultureInfo.InvariantCulture, $"{r.State.ToSsName(),-10} {r.RecvQ,6} {r.SendQ,6} {r.Local,-21} {r.Peer,-21}");
            if (r.Timer is not null) text.Append(' ').Append(r.Timer);
            text.AppendLine();
            if (r.Info is not null) text.Append("\t ").AppendLine(r.Info);
        }
        return text.ToString();
    }
}
