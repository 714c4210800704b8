using AtpFast.Attribution;
using AtpFast.Onnx;
using AtpFast.Tokenizers;

namespace AtpFast.Native;

/// <summary>An <c>atp_context</c>: a backend choice, a thread count, the lock that serialises its computations, and the
/// models and results it owns.</summary>
internal sealed class NativeContext(int backend, int threads) : INativeObject
{
    private readonly Lock _ownedGate = new();
    private readonly HashSet<nint> _owned = [];

    public static string Kind => "atp_context";

    public string KindName => Kind;

    /// <summary>ATP_BACKEND_* asked for.</summary>
    public int Backend { get; } = backend;

    /// <summary>CPU worker threads (0 = all cores).</summary>
    public int Threads { get; } = threads;

    /// <summary>Held by loads, runs and destroys: one computation at a time per context.</summary>
    public Lock Sync { get; } = new();

    /// <summary>Set under <see cref="Sync"/> by <c>atp_context_destroy</c>; checked after taking the lock.</summary>
    public bool Destroyed { get; private set; }

    public nint Token { get; set; }

    /// <summary>Registers an object the context owns and returns its handle.</summary>
    public nint Adopt(object owned)
    {
        nint token = Handles.Add(owned);
        lock (_ownedGate) _owned.Add(token);
        return token;
    }

    /// <summary>Forgets an owned object's handle (it was destroyed on its own).</summary>
    public bool Release(nint token)
    {
        lock (_ownedGate) _owned.Remove(token);
        return Handles.Remove(token);
    }

    /// <summary>Throws ATP_ERR_BAD_HANDLE when the context was destroyed while the caller waited for its lock.</summary>
    public void EnsureAlive(string argument)
    {
        if (Destroyed) throw new NativeException(Status.BadHandle, $"{argument} was destroyed");
    }

    /// <summary>Destroys every owned object and the context itself. Call with <see cref="Sync"/> held.</summary>
    public void Destroy()
    {
        Destroyed = true;
        Handles.Remove(Token);
        nint[] owned;
        lock (_ownedGate)
        {
            owned = [.. _owned];
            _owned.Clear();
        }
        foreach (nint token in owned)
        {
            if (Handles.TryTake(token) is NativeModel model) model.Dispose();
        }
    }
}

/// <summary>An <c>atp_model</c>: the imported weights, the backend over them, and the tokenizer when there is one.</summary>
internal sealed class NativeModel(NativeContext context, ImportedModel model, IBackend backend, ITokenizer? tokenizer, string tokenizerProblem)
    : INativeObject, IDisposable
{
    public static string Kind => "atp_model";

    public string KindName => Kind;

    public NativeContext Context { get; } = context;

    public ImportedModel Model { get; } = model;

    public ModelConfig Config => Model.Config;

    public IBackend Backend { get; } = backend;

    public ITokenizer? Tokenizer { get; } = tokenizer;

    /// <summary>Why there is no tokenizer (when <see cref="Tokenizer"/> is null).</summary>
    public string TokenizerProblem { get; } = tokenizerProblem;

    /// <summary>Set under the context's lock by <c>atp_model_destroy</c>.</summary>
    public bool Destroyed { get; private set; }

    public void EnsureAlive(string argument)
    {
        if (Destroyed) throw new NativeException(Status.BadHandle, $"{argument} was destroyed");
    }

    public void Dispose()
    {
        Destroyed = true;
        Backend.Dispose();
    }
}

/// <summary>An <c>atp_result</c>: one run's ranked rows (immutable, so reads need no lock).</summary>
internal sealed class NativeResult(NativeContext context, AttributionResult result) : INativeObject
{
    public static string Kind => "atp_result";

    public string KindName => Kind;

    public NativeContext Context { get; } = context;

    public AttributionResult Result { get; } = result;

    public NodeSpace Space { get; } = new(result.Config, result.SeqLen);

    public string Notes { get; } = string.Join("\n", result.Notes);

    public int Verified { get; } = result.Rows.Count(r => r.VerifiedEffect is not null);
}
