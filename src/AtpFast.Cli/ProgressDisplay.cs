using System.Diagnostics;
using System.Globalization;
using AtpFast.Attribution;
using Spectre.Console;

namespace AtpFast.Cli;

/// <summary>Shows the progress of long attribution work: a Spectre.Console bar per stage (done/total, rate, ETA) on an
/// interactive terminal, one line per stage otherwise (logs, CI).</summary>
internal static class ProgressDisplay
{
    public static T Run<T>(Func<IProgress<AttributionProgress>, T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive || Console.IsOutputRedirected)
            return work(new LineProgress());
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx => result = work(new BarProgress(ctx)));
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

    private sealed class LineProgress : IProgress<AttributionProgress>
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
                Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {value.Stage}: done in {_clock.Elapsed.TotalSeconds:F1} s{Rate(value.Done, _clock.Elapsed)}");
            }
        }
    }
}
