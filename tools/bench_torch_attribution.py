#!/usr/bin/python3
"""PyTorch CPU peer for AtpFast's attribution benchmarks (float32, eager, activation gradients only).

    /usr/bin/python3 tools/bench_torch_attribution.py --model ioi-gpt2 --pairs 32 --threads 2
    /usr/bin/python3 tools/bench_torch_attribution.py --model stories260K --pairs 16 --threads 1 --quick

Uses the same modules and formulas as tools/atp_reference.py (tools/atp_torch.py), noising direction
(base = clean, source = noise), metric logit-diff on the last position. Prompt pairs: ioi-gpt2 = the
14-token held-out IOI pairs of tasks.jsonl (cycled if --pairs exceeds the 32 available); stories260K =
8-token windows of reference.json's greedy continuation with one token replaced (answer = clean argmax,
wrong = noise argmax or its runner-up).

Timed, after warm-up, as medians of repeats:
 (a) AtP: one batched forward on the P noise prompts (cache every node), one forward + one backward on the
     P clean prompts (parameters never require grad; gradients of the cached activations only, metric
     summed over the batch so gradients stay per example), then delta . grad for every q, k, v, z head
     node, every MLP neuron and every resid_pre, at every position (and the all-position sums).
     Reported as ms per pair.
 (b) AtP*: the same two forwards, the ordinary backward plus L partial backwards (GradDrop: block l's write
     detached, computed from the one clean forward), the brute-force QK fix (vectorised re-softmax) for
     q/k with each layer's gradients, and the delta . grad products for the L GradDrop terms. ms per pair.
 (c) exact patching throughput (nodes/s) on pair 0: a TransformerLens-style loop (one batch-1 forward of
     the clean prompt per node, a hook cloning the activation and overwriting the node's slice with the
     noise run's value, then the metric) over a sample of ~200 nodes stratified over the six node kinds;
     and a batched version (batch 256 copies of the clean prompt, each row patching a different node via
     a boolean mask, mask construction included) over a stratified sample of a few thousand nodes.
Prints ONE JSON line at the end (atp_node_values_per_pair counts every per-position node of (a), all heads
and all neurons, plus the all-position sums; "checks" compares the timed float32 AtP with the float64 path
and the loop with the batched patching on the nodes both samples share).
"""
import argparse
import json
import os
import random
import re
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atp_torch as A  # noqa: E402

BATCH = 256


def blas_name():
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=(\w+)", cfg)
    info = m.group(1) if m else "unknown"
    if "mkl" in info.lower():
        return "MKL"
    if "openblas" in info.lower():
        return "OpenBLAS"
    # Debian's torch is built against the generic libblas interface: report what is actually loaded.
    loaded = set()
    try:
        for line in open("/proc/self/maps"):
            if "blas" in line.lower():
                loaded.add(os.path.realpath(line.split()[-1]))
    except OSError:
        pass
    which = "OpenBLAS" if any("openblas" in p for p in loaded) else ("MKL" if any("mkl" in p for p in loaded) else "reference BLAS")
    return f"{which} (torch BLAS_INFO={info}; loaded: {', '.join(sorted(loaded)) or 'none'})"


def median_time(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_pairs(name, model, n):
    if name == "ioi-gpt2":
        base = A.ioi_pairs(10 ** 6, 14)
        return [base[i % len(base)] for i in range(n)]
    ref = json.load(open(os.path.join(A.STORIES_DIR, "reference.json")))
    g = ref["greedy_from_bos"]
    windows = [g[i:i + 8] for i in range(len(g) - 8 + 1)]
    rng = random.Random(0)
    pairs = []
    for i in range(n):
        clean = list(windows[i % len(windows)])
        noise = list(clean)
        pos = rng.randrange(1, 8)
        noise[pos] = rng.choice([t for t in range(3, model.cfg.vocab) if t != clean[pos]])
        pairs.append({"clean": clean, "noise": noise})
    with torch.no_grad():
        lg, _ = model.run(torch.tensor([p["clean"] for p in pairs] + [p["noise"] for p in pairs]), last_only=True)
    for i, p in enumerate(pairs):
        p["answer"] = int(lg[i].argmax())
        order = lg[n + i].argsort(descending=True).tolist()
        p["wrong"] = order[0] if order[0] != p["answer"] else order[1]
    return pairs


def atp_step(model, clean, noise, ctx, keys):
    """AtP for all nodes of all P pairs (noising): returns {(kind, layer): [P, F, T+1]}."""
    with torch.no_grad():
        _, src = model.run(noise, last_only=True)
    logits, cache = model.run(clean, grad=True, last_only=True)
    value = A.metric("logit-diff", logits, ctx).sum()
    grads = A.activation_grads(value, cache, keys)
    with torch.no_grad():
        base = {k: cache[k].detach() for k in keys}
        return A.atp_arrays(base, src, grads, range(model.cfg.n_layers))


def atpstar_step(model, clean, noise, ctx):
    """AtP* for all nodes of all P pairs: list over l of {(kind, layer): [P, F, T+1]} (q/k QK-fixed)."""
    layers = range(model.cfg.n_layers)
    with torch.no_grad():
        _, src = model.run(noise, last_only=True)
    logits, cache = model.run(clean, grad=True, last_only=True)
    _, per_layer = A.graddrop_grads_shared(model, cache, A.metric("logit-diff", logits, ctx).sum())
    out = []
    with torch.no_grad():
        base = {k: v.detach() for k, v in cache.items()}
        for gl in per_layer:
            arr = A.atp_arrays(base, src, gl, layers)
            arr.update(A.qk_arrays(base, src, gl, layers, model.cfg.group, batched=True))
            out.append(arr)
    return out


def stratified_sample(nodes, n, seed):
    """n nodes: an equal quota per node kind (capped at the kind's count), the rest filled uniformly at
    random from the nodes not yet drawn (in practice mostly MLP neurons, the largest kind)."""
    rng = random.Random(seed)
    by_kind = {}
    for nd in nodes:
        by_kind.setdefault(nd.kind, []).append(nd)
    per = max(1, n // len(by_kind))
    sample = []
    for kind in A.NODE_KINDS:
        pool = by_kind[kind]
        sample += rng.sample(pool, min(per, len(pool)))
    chosen = set(id(x) for x in sample)
    rest = [nd for nd in nodes if id(nd) not in chosen]
    sample += rng.sample(rest, min(len(rest), n - len(sample)))
    rng.shuffle(sample)
    return sample


def count_kinds(sample):
    out = {}
    for nd in sample:
        out[nd.kind] = out.get(nd.kind, 0) + 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["ioi-gpt2", "stories260K"], default="ioi-gpt2")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and a smaller exact-patching sample")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = A.load_ioi_gpt2(dtype=torch.float32) if args.model == "ioi-gpt2" else A.load_stories(dtype=torch.float32)[0]
    cfg = model.cfg
    pairs = bench_pairs(args.model, model, args.pairs)
    t = len(pairs[0]["clean"])
    clean = torch.tensor([p["clean"] for p in pairs])
    noise = torch.tensor([p["noise"] for p in pairs])
    ctx = A.MetricCtx(torch.tensor([p["answer"] for p in pairs]), torch.tensor([p["wrong"] for p in pairs]))
    keys = A.site_keys(cfg.n_layers, A.NODE_KINDS)
    repeats, warmup = (5, 2) if args.quick else (20, 3)

    # (a) AtP and (b) AtP*
    atp_s = median_time(lambda: atp_step(model, clean, noise, ctx, keys), repeats, warmup)
    star_s = median_time(lambda: atpstar_step(model, clean, noise, ctx), max(3, repeats // 2), warmup)

    # the timed AtP computes the reference quantity: compare pair 0 with the float64 path of atp_reference
    m64 = model.to_dtype(torch.float64)
    ctx0 = A.MetricCtx(ctx.answer[:1], ctx.wrong[:1])
    arr32 = atp_step(model, clean, noise, ctx, keys)
    arr64 = atp_step(m64, clean[:1], noise[:1], ctx0, keys)
    atp_check = max(((arr32[k][:1].double() - arr64[k]).abs().max() / arr64[k].abs().max().clamp(min=1.0)).item()
                    for k in arr64)

    # (c) exact patching on pair 0
    nodes = A.make_nodes(cfg, t, 1)
    per_pos = [nd for nd in nodes if nd.pos is not None]
    base_ids = clean[:1]
    with torch.no_grad():
        _, src = model.run(noise[:1], last_only=True)
        base_val = A.metric("logit-diff", model.run(base_ids, last_only=True)[0], ctx0)
    loop_sample = stratified_sample(per_pos, 60 if args.quick else 200, 1)
    batch_sample = stratified_sample(per_pos, 1024 if args.quick else 4096, 2)

    def exact_loop():
        out = []
        with torch.no_grad():
            for nd in loop_sample:
                lg, _ = model.run(base_ids, patch=A.index_patch(nd, src), last_only=True)
                out.append((A.metric("logit-diff", lg, ctx0) - base_val).item())
        return out

    def exact_batched():
        out = []
        with torch.no_grad():
            for s in range(0, len(batch_sample), BATCH):
                chunk = batch_sample[s:s + BATCH]
                patch = A.build_patch(chunk, src, t)
                lg, _ = model.run(base_ids.expand(len(chunk), t), patch=patch, last_only=True)
                n = len(chunk)
                out.append(A.metric("logit-diff", lg, A.MetricCtx(ctx0.answer.expand(n), ctx0.wrong.expand(n))) - base_val)
        return torch.cat(out)

    loop_s = median_time(exact_loop, 1 if args.quick else 3, 1)
    batched_s = median_time(exact_batched, 1 if args.quick else 3, 1)
    # loop and batched patching agree on the nodes they share (float32)
    shared = {id(nd): i for i, nd in enumerate(batch_sample)}
    loop_vals = exact_loop()
    batch_vals = exact_batched()
    common = [(v, batch_vals[shared[id(nd)]].item()) for nd, v in zip(loop_sample, loop_vals) if id(nd) in shared]

    result = {
        "model": args.model, "threads": args.threads, "torch": torch.__version__, "blas": blas_name(),
        "pairs": args.pairs, "seq_len": t, "dtype": "float32", "quick": args.quick,
        "atp_ms_per_pair": atp_s * 1e3 / args.pairs,
        "atpstar_ms_per_pair": star_s * 1e3 / args.pairs,
        "exact_loop_nodes_per_s": len(loop_sample) / loop_s,
        "exact_batched_nodes_per_s": len(batch_sample) / batched_s,
        "exact_nodes_sampled": {"loop": len(loop_sample), "batched": len(batch_sample), "batch_size": BATCH,
                                "loop_by_kind": count_kinds(loop_sample), "batched_by_kind": count_kinds(batch_sample),
                                "node_universe": len(per_pos)},
        "atp_node_values_per_pair": sum(v.shape[1] * v.shape[2] for v in arr32.values()),
        "checks": {"atp_float32_vs_float64_max_rel": atp_check, "loop_vs_batched_shared_nodes": len(common),
                   "loop_vs_batched_max_abs": max((abs(a - b) for a, b in common), default=0.0)},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
