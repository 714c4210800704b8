using ILGPU;
using ILGPU.Runtime;

namespace AtpFast.Gpu;

/// <summary>Named device work buffers grown on demand (allocating per pass would dominate small passes), plus the
/// empty views kernels take for unused inputs and cached identity maps. The backend is single-threaded at the pass level.</summary>
internal sealed class DeviceWorkspace : IDisposable
{
    private readonly GpuBackend _owner;
    private readonly Dictionary<string, MemoryBuffer1D<float, Stride1D.Dense>> _floats = [];
    private readonly Dictionary<string, MemoryBuffer1D<int, Stride1D.Dense>> _ints = [];
    private readonly Dictionary<string, MemoryBuffer1D<double, Stride1D.Dense>> _doubles = [];
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _emptyFloats;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _emptyInts;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _emptyDoubles;
    private MemoryBuffer1D<int, Stride1D.Dense>? _identity;

    public DeviceWorkspace(GpuBackend owner)
    {
        _owner = owner;
        _emptyFloats = owner.Allocate<float>(1, "work space");
        _emptyInts = owner.Allocate<int>(1, "work space");
        _emptyDoubles = owner.Allocate<double>(1, "work space");
    }

    /// <summary>A zero-length float view (for inputs a kernel does not read).</summary>
    public ArrayView<float> Empty => _emptyFloats.View.SubView(0, 0);

    /// <summary>A zero-length int view (a kernel's "no map").</summary>
    public ArrayView<int> EmptyInts => _emptyInts.View.SubView(0, 0);

    /// <summary>A zero-length double view.</summary>
    public ArrayView<double> EmptyDoubles => _emptyDoubles.View.SubView(0, 0);

    public ArrayView<float> Floats(string name, long length) => Get(_floats, name, length);

    public ArrayView<int> Ints(string name, long length) => Get(_ints, name, length);

    public ArrayView<double> Doubles(string name, long length) => Get(_doubles, name, length);

    /// <summary>[0, 1, …, n − 1] on the device.</summary>
    public ArrayView<int> Identity(int n)
    {
        if (_identity is null || _identity.Length < n)
        {
            _identity?.Dispose();
            _identity = _owner.Allocate<int>(Math.Max(n, 2 * (_identity?.Length ?? 0)), "work space");
            _identity.View.CopyFromCPU([.. Enumerable.Range(0, (int)_identity.Length)]);
        }
        return _identity.View.SubView(0, n);
    }

    private ArrayView<T> Get<T>(Dictionary<string, MemoryBuffer1D<T, Stride1D.Dense>> buffers, string name, long length) where T : unmanaged
    {
        if (!buffers.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            long size = Math.Max(length, (buffer?.Length ?? 0) * 3 / 2);
            buffer?.Dispose();
            buffers[name] = buffer = _owner.Allocate<T>(size, "work space (" + name + ")");
        }
        return buffer.View.SubView(0, Math.Max(length, 0));
    }

    public void Dispose()
    {
        foreach (var b in _floats.Values) b.Dispose();
        foreach (var b in _ints.Values) b.Dispose();
        foreach (var b in _doubles.Values) b.Dispose();
        _floats.Clear();
        _ints.Clear();
        _doubles.Clear();
        _identity?.Dispose();
        _emptyFloats.Dispose();
        _emptyInts.Dispose();
        _emptyDoubles.Dispose();
    }
}
