using TcpLab.Stack.Time;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Lab.Scenarios;

/// <summary>
/// Runs a scenario's steps at their times, counted from the run's origin on the loop's clock;
/// a step with a condition ("when: s is CLOSE_WAIT") waits after its time until the socket is
/// in that state, as an application reacting to it would. Each step goes to the runner of its
/// host; crafted segments (inject, and a flood's at its rate) go to the lab's injector.
/// </summary>
internal sealed class StepScheduler
{
    private readonly EventLoop _loop;
    private readonly Instant _origin;
    private readonly RunRecord _record;
    private readonly Func<string, IApplicationRunner> _runnerOf;
    private readonly Action<CraftedSegment> _inject;
    private readonly DeterministicRandom _random;
    private readonly List<Step> _waiting = new();

    /// <param name="random">Where floods draw their spoofed addresses, ports and sequence numbers.</param>
    public StepScheduler(EventLoop loop, Instant origin, RunRecord record, Func<string, IApplicationRunner> runnerOf,
                         Action<CraftedSegment> inject, DeterministicRandom random)
    {
        _loop = loop;
        _origin = origin;
        _record = record;
        _runnerOf = runnerOf;
        _inject = inject;
        _random = random;
        record.Changed += RunWaitingSteps;
    }

    /// <summary>Arms a timer for every step. Call on the loop.</summary>
    public void Schedule(IEnumerable<Step> steps)
    {
        foreach (Step step in steps)
        {
            Step s = step;
            _loop.CreateTimer(() => Due(s)).Arm(_origin + step.At);
        }
    }

    private void Due(Step step)
    {
        if (step.When is null || Holds(step.When)) Execute(step);
        else _waiting.Add(step);
    }

    private bool Holds(StateCondition condition) => _record.CurrentState(condition.Socket) == condition.State;

    private void RunWaitingSteps()
    {
        for (int i = 0; i < _waiting.Count; i++)
        {
            if (!Holds(_waiting[i].When!)) continue;
            Step step = _waiting[i];
            _waiting.RemoveAt(i--);
            // After the state change has been fully processed, as an application would react.
            _loop.Post(() => Execute(step));
        }
    }

    /// <summary>
    /// A step that cannot be carried out (a socket that does not exist yet, a segment whose
    /// numbers are unknown) is the scenario's failure, not the stack's: it is recorded and the
    /// run goes on, so the rest of the timeline is still there to read.
    /// </summary>
    private void Execute(Step step)
    {
        try
        {
            switch (step)
            {
                case InjectStep inject:
                    _inject(CraftedSegment.For(inject, _record));
                    break;
                case FloodStep flood:
                    StartFlood(flood);
                    break;
                default:
                    _runnerOf(step.Host).Execute(step);
                    break;
            }
        }
        catch (InvalidOperationException e)
        {
            _record.StepFailures.Add($"line {step.Line} at {(_loop.Now - _origin).TotalSeconds:0.######} s: {e.Message}");
        }
    }

    private void StartFlood(FloodStep flood) =>
        new FloodRun(_loop, flood, _random.Derive($"flood/line {flood.Line}"), _inject).SendDue();

    /// <summary>
    /// A flood under way: its segments at its rate, timed from when the step ran, by one timer
    /// that sends whatever is due each time it fires (one segment each time in virtual time; a
    /// batch when a real-time loop wakes late) and is armed again for the next one.
    /// </summary>
    private sealed class FloodRun
    {
        private readonly EventLoop _loop;
        private readonly FloodStep _flood;
        private readonly DeterministicRandom _random;
        private readonly Action<CraftedSegment> _inject;
        private readonly Instant _start;
        private readonly Timer _timer;
        private int _sent;

        public FloodRun(EventLoop loop, FloodStep flood, DeterministicRandom random, Action<CraftedSegment> inject)
        {
            _loop = loop;
            _flood = flood;
            _random = random;
            _inject = inject;
            _start = loop.Now;
            _timer = loop.CreateTimer(SendDue);
        }

        public void SendDue()
        {
            while (_sent < _flood.Count && _start + _flood.Offset(_sent) <= _loop.Now)
            {
                _inject(CraftedSegment.Spoofed(_flood, _random));
                _sent++;
            }
            if (_sent < _flood.Count) _timer.Arm(_start + _flood.Offset(_sent));
        }
    }
}
