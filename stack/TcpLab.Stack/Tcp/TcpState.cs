namespace TcpLab.Stack.Tcp;

/// <summary>The connection states of RFC 9293 section 3.3.2.</summary>
public enum TcpState
{
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

public static class TcpStateNames
{
    /// <summary>The name `ss` prints: ESTAB, SYN-SENT, FIN-WAIT-1, TIME-WAIT, ...</summary>
    public static string ToSsName(this TcpState state) => state switch
    {
        TcpState.Closed => "UNCONN",
        TcpState.Listen => "LISTEN",
        TcpState.SynSent => "SYN-SENT",
        TcpState.SynReceived => "SYN-RECV",
        TcpState.Established => "ESTAB",
        TcpState.FinWait1 => "FIN-WAIT-1",
        TcpState.FinWait2 => "FIN-WAIT-2",
        TcpState.CloseWait => "CLOSE-WAIT",
        TcpState.Closing => "CLOSING",
        TcpState.LastAck => "LAST-ACK",
        TcpState.TimeWait => "TIME-WAIT",
        _ => state.ToString(),
    };

    /// <summary>The name netstat and the RFC use: ESTABLISHED, SYN_SENT, FIN_WAIT1, TIME_WAIT, ...</summary>
    public static string ToNetstatName(this TcpState state) => state switch
    {
        TcpState.Closed => "CLOSED",
        TcpState.Listen => "LISTEN",
        TcpState.SynSent => "SYN_SENT",
        TcpState.SynReceived => "SYN_RECV",
        TcpState.Established => "ESTABLISHED",
        TcpState.FinWait1 => "FIN_WAIT1",
        TcpState.FinWait2 => "FIN_WAIT2",
        TcpState.CloseWait => "CLOSE_WAIT",
        TcpState.Closing => "CLOSING",
        TcpState.LastAck => "LAST_ACK",
        TcpState.TimeWait => "TIME_WAIT",
        _ => state.ToString(),
    };

    /// <summary>Parses either naming (and the enum name), case-insensitively.</summary>
    public static bool TryParse(string text, out TcpState state)
    {
        string key = text.Replace("-", "").Replace("_", "").ToUpperInvariant();
        foreach (TcpState s in Enum.GetValues<TcpState>())
        {
            if (Normal(s.ToString()) == key || Normal(s.ToSsName()) == key || Normal(s.ToNetstatName()) == key)
            {
                state = s;
                return true;
            }
        }
        state = default;
        return false;

        static string Normal(string name) => name.Replace("-", "").Replace("_", "").ToUpperInvariant();
    }
}

/// <summary>The kernel's own numbering and names of the states (include/net/tcp_states.h), as sock_diag and tracepoints report them.</summary>
public static class LinuxTcpStates
{
    /// <summary>TCP_ESTABLISHED = 1 ... TCP_CLOSING = 11; TCP_NEW_SYN_RECV (12) is a request, SYN_RECV to us.</summary>
    public static bool TryFromNumber(int number, out TcpState state)
    {
        state = number switch
        {
            1 => TcpState.Established,
            2 => TcpState.SynSent,
            3 or 12 => TcpState.SynReceived,
            4 => TcpState.FinWait1,
            5 => TcpState.FinWait2,
            6 => TcpState.TimeWait,
            7 => TcpState.Closed,
            8 => TcpState.CloseWait,
            9 => TcpState.LastAck,
            10 => TcpState.Listen,
            11 => TcpState.Closing,
            _ => (TcpState)(-1),
        };
        return state >= 0;
    }

    /// <summary>"TCP_SYN_RECV", "TCP_CLOSE", ... as the inet_sock_set_state tracepoint prints them.</summary>
    public static bool TryFromName(string name, out TcpState state)
    {
        if (name == "TCP_CLOSE")
        {
            state = TcpState.Closed;
            return true;
        }
        state = default;
        return name.StartsWith("TCP_", StringComparison.Ordinal) && TcpStateNames.TryParse(name[4..], out state);
    }
}
