using System.Security.Cryptography;

namespace AtpFast.Native;

/// <summary>
/// The live objects behind the opaque handles of atpfast.h. A handle is a random 64-bit token, never an address:
/// looking it up here is the only way from a handle to an object, so a destroyed, foreign or made-up handle is
/// reported (ATP_ERR_BAD_HANDLE) instead of being dereferenced. Tokens are never reused within a process.
/// </summary>
internal static class Handles
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<nint, object> Live = [];
    private static readonly ulong Key = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
    private static ulong s_counter;

    /// <summary>Registers <paramref name="target"/> and returns its new token: a counter passed through a bijective
    /// mixer keyed per process, so tokens never repeat and look random (a guessed value is almost never live).</summary>
    public static nint Add(object target)
    {
        lock (Gate)
        {
            nint token;
            do token = (nint)Mix(++s_counter ^ Key); while (token == 0);
            Live.Add(token, target);
            return token;
        }
    }

    // The splitmix64 finaliser: xor-shifts and odd multipliers, each invertible, so distinct inputs give distinct tokens.
    private static ulong Mix(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9UL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebUL;
        return x ^ (x >> 31);
    }

    /// <summary>Forgets <paramref name="token"/>; false when it was not live.</summary>
    public static bool Remove(nint token)
    {
        lock (Gate) return Live.Remove(token);
    }

    /// <summary>Forgets <paramref name="token"/> and returns what it named (null when it was not live).</summary>
    public static object? TryTake(nint token)
    {
        lock (Gate) return Live.Remove(token, out var target) ? target : null;
    }

    /// <summary>The live <typeparamref name="T"/> behind <paramref name="token"/>.</summary>
    /// <exception cref="NativeException">NULL, not live, or another kind of object.</exception>
    public static T Get<T>(nint token, string argument) where T : class, INativeObject
    {
        if (token == 0) throw new NativeException(Status.NullArgument, $"{argument} is NULL");
        object? target;
        lock (Gate) Live.TryGetValue(token, out target);
        return target switch
        {
            T found => found,
            null => throw new NativeException(Status.BadHandle,
                $"{argument} (0x{(ulong)token:x16}) is not a live {T.Kind} handle: it was destroyed (possibly with its context) " +
                "or never returned by this library"),
            INativeObject other => throw new NativeException(Status.BadHandle,
                $"{argument} (0x{(ulong)token:x16}) is an {other.KindName} handle, not an {T.Kind}"),
            _ => throw new NativeException(Status.Internal, $"{argument}: handle table holds an unexpected object"),
        };
    }
}

/// <summary>An object a handle can name.</summary>
internal interface INativeObject
{
    /// <summary>The C type name (atp_context, atp_model, atp_result).</summary>
    static abstract string Kind { get; }

    /// <summary>The same, from an instance.</summary>
    string KindName { get; }
}
