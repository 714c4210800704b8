namespace AtpFast.Cli;

/// <summary>Exit codes scripts can rely on (documented in README).</summary>
internal static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>Unexpected internal failure (a bug: please report it with the stack trace), or a failed selftest parity
    /// check.</summary>
    public const int InternalError = 1;
    /// <summary>Bad input: a file, flag or prompt the tool cannot use; the message names it.</summary>
    public const int BadInput = 2;
    /// <summary><c>bench --compare</c>: a kernel or pass is slower than the baseline beyond <c>--max-slowdown</c>.</summary>
    public const int PerformanceRegression = 3;
    /// <summary>Stopped by Ctrl-C (128 + SIGINT); finished work units are kept for <c>--resume</c>.</summary>
    public const int Interrupted = 130;
}
