using System.Diagnostics;
using System.Globalization;
using AtpFast.Attribution;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>Shows the progress of long attribution work: a Spectre.Console bar per stage (done/total, rate, ETA) on an
/// interactive terminal, one line per stage otherwise (logs, CI).</summary>
internal static class ProgressDisplay
{
    public static T Run<T>(Func<IProgress<AttributionProgress>, T> work) =>
        Show(() => work(new StageLines(withRate: true)), ctx => work(new BarProgress(ctx)));

    /// <summary>Runs <paramref name="lines"/> when the console is not interactive (or output is redirected), else
    /// <paramref name="bars"/> inside a Spectre.Console progress display (bar, percentage, ETA, spinner).</summary>
    internal static T Show<T>(Func<T> lines, Func<ProgressContext, T> bars)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive || Console.IsOutputRedirected)
            return lines();
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx => result = bars(ctx));
        return result;
    }

    private static string Rate(long done, TimeSpan elapsed) =>
        elapsed.TotalSeconds < 0.05 ? "" : string.Create(CultureInfo.InvariantCulture, $", {done / elapsed.TotalSeconds:N0}/s");

    private sealed class BarProgress(ProgressContext context) : IProgress<AttributionProgress>
    {
        private readonly Lock _lock = new();
        private readonly Stopwatch _clock = new();
        private ProgressTask? _task;
        private string? _stage;

        public void Report(AttributionProgress value)
        {
            lock (_lock)
            {
                if (value.Stage != _stage || _task is null)
                {
                    if (_task is not null) _task.Value = _task.MaxValue;
                    _task = context.AddTask(Markup.Escape(value.Stage), maxValue: Math.Max(1, value.Total));
                    _stage = value.Stage;
                    _clock.Restart();
                }
                _task.Value = value.Done;
                _task.Description = Markup.Escape($"{value.Stage} ({value.Done:N0}/{value.Total:N0}{Rate(value.Done, _clock.Elapsed)})");
            }
        }
    }

    /// <summary>One line on standard error when a stage starts (its size) and one when it is done (its time and, with
    /// <paramref name="withRate"/>, its rate).</summary>
    internal sealed class StageLines(bool withRate) : IProgress<AttributionProgress>
    {
        private readonly Stopwatch _clock = new();
        private string? _stage;

        public void Report(AttributionProgress value)
        {
            if (value.Stage != _stage)
            {
                _stage = value.Stage;
                _clock.Restart();
                Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {value.Stage}: {value.Total:N0} units");
            }
            else if (value.Done == value.Total)
            {
                Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {value.Stage}: done in {_clock.Elapsed.TotalSeconds:F1} s{(withRate ? Rate(value.Done, _clock.Elapsed) : "")}");
            }
        }
    }
}

/// <summary>Progress of a run cut into work units: an overall bar (units done, node·pair scores per second, ETA) and a
/// bar for the pass running now, on an interactive terminal; otherwise one line per finished unit and per finishing
/// stage.</summary>
internal abstract class UnitProgress
{
    /// <summary>The current stage's progress (passes of the unit or of the finishing step).</summary>
    public abstract IProgress<AttributionProgress> Stages { get; }

    /// <summary>Called when the units this invocation computes are known (some may already be done).</summary>
    public abstract void Begin(int total, int alreadyDone);

    /// <summary>Called after each unit finishes.</summary>
    public abstract void UnitDone(int unit, int done, int total, long work, TimeSpan unitTime);

    /// <summary>The units are done; what follows (verification, bound) reports through <see cref="Stages"/> only.</summary>
    public abstract void Finishing();

    /// <summary>Runs <paramref name="work"/> with the display that suits the console.</summary>
    public static T Show<T>(Func<UnitProgress, T> work) =>
        ProgressDisplay.Show(() => work(new Lines()), ctx => work(new Bars(ctx)));

    private static string Rate(long work, TimeSpan elapsed) =>
        elapsed.TotalSeconds < 0.01 ? "" : string.Create(CultureInfo.InvariantCulture, $"{work / elapsed.TotalSeconds:N0} node·pairs/s");

    private sealed class Bars(ProgressContext context) : UnitProgress, IProgress<AttributionProgress>
    {
        private readonly Lock _lock = new();
        private readonly Stopwatch _clock = new();
        private ProgressTask? _units;
        private ProgressTask? _stage;
        private long _work;

        public override IProgress<AttributionProgress> Stages => this;

        public override void Begin(int total, int alreadyDone)
        {
            lock (_lock)
            {
                _units = context.AddTask(Markup.Escape($"work units ({alreadyDone}/{total})"), maxValue: Math.Max(1, total));
                _units.Value = alreadyDone;
                _clock.Restart();
            }
        }

        public override void UnitDone(int unit, int done, int total, long work, TimeSpan unitTime)
        {
            lock (_lock)
            {
                _work += work;
                if (_units is null) return;
                _units.Value = done;
                _units.Description = Markup.Escape($"work units ({done}/{total}, {Rate(_work, _clock.Elapsed)})");
            }
        }

        public override void Finishing()
        {
            lock (_lock)
            {
                if (_units is not null) _units.Value = _units.MaxValue;
            }
        }

        public void Report(AttributionProgress value)
        {
            lock (_lock)
            {
                _stage ??= context.AddTask(Markup.Escape(value.Stage), maxValue: 1);
                _stage.MaxValue = Math.Max(1, value.Total);
                _stage.Value = value.Done;
                _stage.Description = Markup.Escape($"{value.Stage} ({value.Done:N0}/{value.Total:N0})");
            }
        }
    }

    private sealed class Lines : UnitProgress, IProgress<AttributionProgress>
    {
        private readonly Stopwatch _clock = new();
        private readonly ProgressDisplay.StageLines _stages = new(withRate: false);
        private bool _finishing = true;
        private long _work;
        private int _startDone;

        public override IProgress<AttributionProgress> Stages => this;

        public override void Begin(int total, int alreadyDone)
        {
            _finishing = false;
            _startDone = alreadyDone;
            _clock.Restart();
            Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {total - alreadyDone} of {total} work units to compute");
        }

        public override void UnitDone(int unit, int done, int total, long work, TimeSpan unitTime)
        {
            _work += work;
            var elapsed = _clock.Elapsed;
            int computed = done - _startDone;
            var eta = computed > 0 ? TimeSpan.FromSeconds(elapsed.TotalSeconds / computed * (total - done)) : TimeSpan.Zero;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{DateTime.Now:HH:mm:ss}] unit {unit} done ({done}/{total}) in {unitTime.TotalSeconds:F1} s; {Rate(_work, elapsed)}; ETA {eta:hh\\:mm\\:ss}"));
        }

        public override void Finishing() => _finishing = true;

        public void Report(AttributionProgress value)
        {
            if (_finishing) _stages.Report(value);
        }
    }
}
