using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AtpFast.Onnx;
using AtpFast.Tasks;
using AtpFast.Tokenizers;

namespace AtpFast.Native;

/// <summary>The status codes of atpfast.h (same values).</summary>
internal enum Status
{
    Ok = 0,
    NullArgument = 1,
    BadHandle = 2,
    BadArgument = 3,
    Io = 4,
    Model = 5,
    Input = 6,
    NotAvailable = 7,
    BufferTooSmall = 8,
    MetricUndefined = 9,
    NonFinite = 10,
    OutOfMemory = 11,
    Internal = 12,
}

/// <summary>A failure the exports report with a specific status; thrown by the argument checks and caught at the
/// boundary (no exception ever leaves an export).</summary>
internal sealed class NativeException(Status status, string message) : Exception(message)
{
    public Status Status { get; } = status;
}

/// <summary>The calling thread's last-error message, kept as NUL-terminated UTF-8 in a pinned array so that
/// <c>atp_last_error</c> can hand out a pointer that stays put until the thread's next call.</summary>
internal static unsafe class LastError
{
    [ThreadStatic] private static byte[]? t_message;

    /// <summary>Where the message lives (a static "" before the first message on this thread).</summary>
    public static byte* Pointer
    {
        get
        {
            var message = t_message;
            if (message is null) return Literals.Empty;
            // A pinned-heap array never moves; it is replaced only by a later call on this thread.
            return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(message));
        }
    }

    public static void Clear()
    {
        if (t_message is { } message) message[0] = 0;
    }

    public static void Set(string text)
    {
        int length = System.Text.Encoding.UTF8.GetByteCount(text);
        var message = t_message;
        if (message is null || message.Length < length + 1)
        {
            message = GC.AllocateUninitializedArray<byte>(Math.Max(256, length + 1), pinned: true);
            t_message = message;
        }
        System.Text.Encoding.UTF8.GetBytes(text, message);
        message[length] = 0;
    }

    /// <summary>Records <paramref name="error"/> for <paramref name="function"/> and returns its status.</summary>
    public static int Fail(string function, Exception error)
    {
        var (status, text) = Classify(error);
        try
        {
            Set($"{function}: {text}");
        }
        catch (OutOfMemoryException)
        {
            Clear();
        }
        return (int)status;
    }

    /// <summary>Success: clears the message and returns ATP_OK.</summary>
    public static int Ok()
    {
        Clear();
        return (int)Status.Ok;
    }

    private static (Status, string) Classify(Exception error) => error switch
    {
        NativeException e => (e.Status, e.Message),
        // Google.Protobuf's parse error derives from IOException: a corrupt file is a model error, not an I/O error.
        OnnxImportException e when e.InnerException is (IOException and not Google.Protobuf.InvalidProtocolBufferException)
            or UnauthorizedAccessException => (Status.Io, e.Message),
        OnnxImportException e => (Status.Model, e.Message),
        MetricUndefinedException e => (Status.MetricUndefined, e.Message),
        NonFiniteValueException e => (Status.NonFinite, e.Message),
        InvalidModelInputException or TaskFileException or TokenizerException => (Status.Input, error.Message),
        AtpFastException e => (Status.Input, e.Message),
        IOException or UnauthorizedAccessException => (Status.Io, error.Message),
        ArgumentException => (Status.BadArgument, error.Message),
        OutOfMemoryException => (Status.OutOfMemory, "out of memory"),
        InsufficientExecutionStackException => (Status.Internal, "out of stack"),
        _ => (Status.Internal, $"internal error ({error.GetType().Name}): {error.Message}"),
    };
}

/// <summary>Static NUL-terminated UTF-8 strings (data in the image: their addresses never change).</summary>
internal static unsafe class Literals
{
    public static byte* Empty => P("\0"u8);

    public static byte* Version => P("0.1.0\0"u8);

    public static byte* StatusName(int status) => status switch
    {
        0 => P("ATP_OK\0"u8),
        1 => P("ATP_ERR_NULL_ARGUMENT\0"u8),
        2 => P("ATP_ERR_BAD_HANDLE\0"u8),
        3 => P("ATP_ERR_BAD_ARGUMENT\0"u8),
        4 => P("ATP_ERR_IO\0"u8),
        5 => P("ATP_ERR_MODEL\0"u8),
        6 => P("ATP_ERR_INPUT\0"u8),
        7 => P("ATP_ERR_NOT_AVAILABLE\0"u8),
        8 => P("ATP_ERR_BUFFER_TOO_SMALL\0"u8),
        9 => P("ATP_ERR_METRIC_UNDEFINED\0"u8),
        10 => P("ATP_ERR_NON_FINITE\0"u8),
        11 => P("ATP_ERR_OUT_OF_MEMORY\0"u8),
        12 => P("ATP_ERR_INTERNAL\0"u8),
        _ => P("ATP_ERR_UNKNOWN\0"u8),
    };

    private static byte* P(ReadOnlySpan<byte> literal) => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(literal));
}
