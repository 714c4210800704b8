namespace AtpFast.Cli;

/// <summary>Exit codes scripts can rely on (documented in README).</summary>
internal static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>Unexpected internal failure (a bug: please report it with the stack trace).</summary>
    public const int InternalError = 1;
    /// <summary>Bad input: a file, flag or prompt the tool cannot use; the message names it.</summary>
    public const int BadInput = 2;
}
