using TcpLab.Stack.Time;

namespace TcpLab.Lab.Scenarios;

/// <summary>
/// Runs a scenario's steps at their times, counted from the run's origin on the loop's clock;
/// a step with a condition ("when: s is CLOSE_WAIT") waits after its time until the socket is
/// in that state, as an application reacting to it would. Each step goes to the runner of its
/// host; crafted segments go to the lab's injector.
/// </summary>
internal sealed class StepScheduler
{
    private readonly EventLoop _loop;
    private readonly Instant _origin;
    private readonly RunRecord _record;
    private readonly Func<string, IApplicationRunner> _runnerOf;
    private readonly Action<InjectStep> _inject;
    private readonly List<Step> _waiting = new();

    public StepScheduler(EventLoop loop, Instant origin, RunRecord record, Func<string, IApplicationRunner> runnerOf, Action<InjectStep> inject)
    {
        _loop = loop;
        _origin = origin;
        _record = record;
        _runnerOf = runnerOf;
        _inject = inject;
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
            if (step is InjectStep inject) _inject(inject);
            else _runnerOf(step.Host).Execute(step);
        }
        catch (InvalidOperationException e)
        {
            _record.StepFailures.Add($"line {step.Line} at {(_loop.Now - _origin).TotalSeconds:0.######} s: {e.Message}");
        }
    }
}
