using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Tests.Support;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Tcp;

/// <summary>
/// The persist timer (tcp_probe_timer, tcp_send_probe0, tcp_ack_probe) in exact virtual time: a
/// client that does not read lets its 4 KB receive window close; the server probes it with
/// bare ACKs at snd_una - 1. The probe timeout is max(RTO, tcp_rto_min) doubled per probe sent
/// (capped at tcp_rto_max); an answer restarts the timer from its arrival with the same backoff.
/// </summary>
public class PersistTests
{
    private static readonly TimeSpan D = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan RtoMax = TimeSpan.FromSeconds(120);

    /// <summary>A server with 20 segments to send to a client whose 4 KB buffer nobody reads.</summary>
    private static Burst ClosingWindow(Action<Sysctls>? sysctls = null)
    {
        var burst = new Burst(D, sysctls, clientOptions: new TcpSocketOptions { ReceiveBufferSize = 4096 });
        burst.Send(20);
        return burst;
    }

    /// <summary>Runs to t = 3 s (the window is zero and one bare probe was answered), then silences the client.</summary>
    private static void ClientVanishesAt3s(Burst burst)
    {
        burst.Net.RunUntil(3);
        burst.ClientSilenced = true;
    }

    private static List<LoggedSegment> BareProbes(Burst burst) =>
        burst.Net.Log.From(TwoHosts.ServerIp).Where(s => s.Length == 0 && s.Comment.StartsWith("zero-window probe", StringComparison.Ordinal)).ToList();

    private static TimeSpan ProbeTimeout(Burst burst, int backoff)
    {
        TimeSpan rto = burst.Server.Rto < TimeSpan.FromMilliseconds(200) ? TimeSpan.FromMilliseconds(200) : burst.Server.Rto;
        return RttEstimator.Backoff(rto, backoff, RtoMax);
    }

    [Fact]
    public void Answered_probes_back_off_exponentially_from_each_answer_and_a_window_update_resumes_the_data()
    {
        Burst burst = ClosingWindow();
        burst.Net.RunUntil(100);

        var probes = BareProbes(burst);
        Assert.True(probes.Count >= 6, burst.Net.Log.Dump());
        Assert.All(probes, p => Assert.Equal(burst.Server.SendUnacknowledged.Value - 1, p.Seq));   // seq snd_una - 1, no data
        for (int i = 1; i < probes.Count; i++)
        {
            // The client answers each probe at once with a zero window; the answer re-arms the timer.
            LoggedSegment answer = burst.Net.Log.From(TwoHosts.ClientIp).First(a => a.At > probes[i - 1].At);
            Assert.Equal(0, answer.Header.Window);
            Assert.Equal((answer.At + D + ProbeTimeout(burst, i)).TotalSeconds, probes[i].At.TotalSeconds, 9);
        }
        Assert.Equal("persist", burst.Server.TimerInfo?.Kind);

        // The application reads: the window update restarts the data at once, without a timeout.
        burst.Client.Observer = new ReadEverything();
        Connected.ReadAll(burst.Client);
        burst.Net.RunUntil(101);
        LoggedSegment update = burst.Net.Log.From(TwoHosts.ClientIp).Single(s => s.At.TotalSeconds == 100);
        Assert.True(update.Header.Window > 0);
        LoggedSegment resumed = burst.ServerData().First(s => s.At.TotalSeconds > 100);
        Assert.Equal(100 + D.TotalSeconds, resumed.At.TotalSeconds, 9);
        Assert.NotEqual("persist", burst.Server.TimerInfo?.Kind);
        Assert.Equal(probes.Count, burst.Net.Server.Counters[Mib.TcpExtTCPWinProbe] - DataProbes(burst));
    }

    /// <summary>Probes that carried data (the window was open a little): counted as window probes too.</summary>
    private static int DataProbes(Burst burst) =>
        burst.Net.Log.From(TwoHosts.ServerIp).Count(s => s.Length > 0 && s.Comment.StartsWith("zero-window probe", StringComparison.Ordinal));

    [Fact]
    public void Unanswered_probes_give_up_after_tcp_retries2_probes_with_ETIMEDOUT()
    {
        Burst burst = ClosingWindow();
        var states = new StateLog(burst.Net.Server);
        ClientVanishesAt3s(burst);
        burst.Net.RunUntil(2000);

        var unanswered = BareProbes(burst).Where(p => p.At.TotalSeconds > 3).ToList();
        int answered = BareProbes(burst).Count - unanswered.Count;
        // icsk_probes_out counts the probes since the last ACK: the 15th unanswered one is the last.
        Assert.Equal(15, unanswered.Count);
        for (int i = 1; i < unanswered.Count; i++)
            Assert.Equal((unanswered[i - 1].At + ProbeTimeout(burst, answered + i)).TotalSeconds, unanswered[i].At.TotalSeconds, 9);
        double diedAt = states.When(burst.Server.Tuple, TcpState.Closed);
        Assert.Equal((unanswered[^1].At + ProbeTimeout(burst, answered + 15)).TotalSeconds, diedAt, 9);
        Assert.Equal(Errno.ETIMEDOUT, burst.Server.Error);
        Assert.Equal(1, burst.Net.Server.Counters[Mib.TcpExtTCPAbortOnTimeout]);
    }

    [Fact]
    public void An_orphan_probing_an_answering_peer_gives_up_once_its_backed_off_RTO_reaches_tcp_rto_max()
    {
        Burst burst = ClosingWindow();
        var states = new StateLog(burst.Net.Server);
        burst.Net.RunUntil(3);
        burst.Server.Close();   // unsent data and a FIN stay queued behind the zero window
        burst.Net.RunUntil(2000);

        // tcp_orphan_retries = 0 means 8 while the RTO backed off by the probes is below
        // tcp_rto_max, and 0 once it is not (tcp_orphan_retries()): the timer then aborts at once.
        var probes = BareProbes(burst);
        double diedAt = states.When(burst.Server.Tuple, TcpState.Closed);
        int backoffAtDeath = 0;
        while (RttEstimator.Backoff(burst.Server.Rto, backoffAtDeath, RtoMax) < RtoMax) backoffAtDeath++;
        // The last probe raised the backoff to that value; its answer re-armed the timer.
        LoggedSegment lastAnswer = burst.Net.Log.From(TwoHosts.ClientIp).Last();
        Assert.Equal((lastAnswer.At + D + ProbeTimeout(burst, backoffAtDeath)).TotalSeconds, diedAt, 9);
        Assert.True(probes.Count >= backoffAtDeath - 1);
        Assert.Equal(Errno.ETIMEDOUT, burst.Server.Error);
        Assert.DoesNotContain(burst.Net.Log.From(TwoHosts.ServerIp), s => (s.Flags & TcpFlags.Rst) != 0);
    }

    [Fact]
    public void An_orphan_whose_peer_vanished_gives_up_after_tcp_orphan_retries_unanswered_probes()
    {
        Burst burst = ClosingWindow(s => s.TcpOrphanRetries = 2);
        var states = new StateLog(burst.Net.Server);
        burst.Net.RunUntil(2.9);
        burst.Server.Close();
        ClientVanishesAt3s(burst);
        burst.Net.RunUntil(2000);

        var unanswered = BareProbes(burst).Where(p => p.At.TotalSeconds > 3).ToList();
        int answered = BareProbes(burst).Count - unanswered.Count;
        Assert.Equal(2, unanswered.Count);
        double diedAt = states.When(burst.Server.Tuple, TcpState.Closed);
        Assert.Equal((unanswered[^1].At + ProbeTimeout(burst, answered + 2)).TotalSeconds, diedAt, 9);
        Assert.Equal(Errno.ETIMEDOUT, burst.Server.Error);
    }
}
