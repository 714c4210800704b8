"""atp_demo.py: the C example (examples/c/atp_demo.c) in Python through ctypes, with the same output.

    python3 atp_demo.py [top [digits]]      ATPFAST_LIB=/path/to/libatpfast.so (default: next to this file, then the loader's path)
"""
import ctypes as C, math, os, sys, time

start = time.monotonic()
lib = C.CDLL(os.environ.get("ATPFAST_LIB") or (os.path.join(os.path.dirname(os.path.abspath(__file__)), "libatpfast.so")
             if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "libatpfast.so")) else "libatpfast.so"))
for name, res in [("atp_version", C.c_int32), ("atp_version_string", C.c_char_p), ("atp_status_name", C.c_char_p), ("atp_last_error", C.c_char_p)]:
    getattr(lib, name).restype = res
H, P, S = C.c_void_p, C.POINTER, C.c_size_t  # handles are opaque tokens: pass them back as they came

class Options(C.Structure):
    _fields_ = [(n, C.c_uint32 if n in ("struct_size", "node_types") else C.c_int32) for n in
                ("struct_size", "method", "metric", "direction", "node_types", "positions", "verify_top", "seed",
                 "pairs_per_batch", "bound_draws")] + [(n, C.c_double) for n in ("budget", "bound_alpha", "inclusion_probability")]

class ResultInfo(C.Structure):
    _fields_ = ([("struct_size", C.c_uint32)] + [(n, C.c_int32) for n in ("meaningful", "method", "metric", "direction",
                "node_types", "positions", "pairs", "seq_len", "verified")] + [("rows", C.c_int64)] + [(n, C.c_double) for n in
                ("method_cost", "verification_cost", "bound_cost", "total_cost", "brute_force_cost", "bound_theta",
                 "baseline_clean", "baseline_noise", "elapsed_seconds")] + [("backend", C.c_char * 32)])

def check(status):
    if status != 0:
        sys.exit(f"atp_demo.py: {lib.atp_status_name(status).decode()}: {lib.atp_last_error().decode()}")

def tokenize(model, text, capacity=64):
    ids, count = (C.c_int32 * capacity)(), S()
    check(lib.atp_model_tokenize(model, text.encode(), ids, S(capacity), C.byref(count)))
    return ids[:count.value]

def number(value, digits):
    return "-" if math.isnan(value) else "%.*g" % (digits, value)

top, digits = (int(sys.argv[1]) if len(sys.argv) > 1 else 10), (int(sys.argv[2]) if len(sys.argv) > 2 else 9)
if lib.atp_version() // 100 != 1:  # ATP_VERSION_COMPATIBLE for atpfast.h 0.1.x
    sys.exit(f"atp_demo.py: libatpfast {lib.atp_version_string().decode()} is not 0.1.x")
clean, noise, answer, wrong = ("When Tom and Peter went to the school, Peter gave a gift to",
                               "When Clara and Rose went to the school, Laura gave a gift to", "Tom", "Peter")
context, model, result = H(), H(), H()
check(lib.atp_context_create(0, 0, C.byref(context)))  # ATP_BACKEND_AUTO, all cores
check(lib.atp_model_load_demo(context, C.byref(model)))
c, n, (a,), (w,) = tokenize(model, clean), tokenize(model, noise), tokenize(model, answer), tokenize(model, wrong)
options = Options(struct_size=C.sizeof(Options))
check(lib.atp_options_init(C.byref(options)))
options.method, options.verify_top = 4, top  # ATP_METHOD_ATP_STAR
ints = lambda xs: (C.c_int32 * len(xs))(*xs)
check(lib.atp_run(context, model, C.byref(options), ints(c), ints(n), S(1), S(len(c)), ints([a]), ints([w]), C.byref(result)))
rows = S()
check(lib.atp_result_row_count(result, C.byref(rows)))
k = min(top, rows.value)
ids, ranks, est, sgn, ver, written = (C.c_int32 * k)(), (C.c_int32 * k)(), (C.c_double * k)(), (C.c_double * k)(), (C.c_double * k)(), S()
check(lib.atp_result_read(result, S(0), S(k), ids, ranks, est, sgn, ver, C.byref(written)))
first_result = time.monotonic()
info = ResultInfo(struct_size=C.sizeof(ResultInfo))
check(lib.atp_result_describe(result, C.byref(info)))
print(f"atpfast {lib.atp_version_string().decode()} ({info.backend.decode()}): atp* on the embedded IOI model")
print(f"clean:  {clean}\nnoise:  {noise}\nanswer: {answer} (id {a}), wrong: {wrong} (id {w})")
print(f"{info.pairs} pair of {info.seq_len} tokens, {info.rows} nodes, {number(info.method_cost, digits)} forward passes per pair")
print("%4s  %-18s  %24s  %24s  %24s" % ("rank", "node", "estimate", "signed_estimate", "verified_effect"))
for i in range(written.value):
    name = C.create_string_buffer(64)
    check(lib.atp_result_node_name(result, ids[i], name, S(64), None))
    print("%4d  %-18s  %24s  %24s  %24s" % (ranks[i], name.value.decode(), number(est[i], digits), number(sgn[i], digits), number(ver[i], digits)))
print(f"atp_demo.py: load-to-first-result {1e3 * (first_result - start):.1f} ms", file=sys.stderr)
check(lib.atp_context_destroy(context))  # destroys the model and the result with it
