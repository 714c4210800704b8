#!/usr/bin/python3
"""PyTorch CPU peer for the forward benchmark: loads the IOI model's ONNX weights into the same PyTorch module
that trained it (tools/train_models.py) and times eager forward passes.

    /usr/bin/python3 tools/bench_torch_forward.py --model src/AtpFast/Models/ioi-gpt2/model.onnx --batch 32 --seq 16 --threads 2

Prints one JSON line: model, batch, seq, threads, median_s, tokens_per_s, torch, blas.
"""
import argparse
import json
import os
import statistics
import sys
import time

import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_models import Gpt2  # noqa: E402


def load(path):
    graph = onnx.load(path).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    vocab, d = weights["transformer.wte.weight"].shape
    layers = len({k.split(".")[2] for k in weights if k.startswith("transformer.h.")})
    model = Gpt2(vocab, d=d, layers=layers, positions=weights["transformer.wpe.weight"].shape[0])
    state = model.state_dict()
    missing = [k for k in state if k not in weights and k != "lm_head.weight"]
    if missing:
        raise SystemExit(f"initializers missing for {missing}")
    model.load_state_dict({k: weights[k] for k in state if k != "lm_head.weight"}, strict=False)
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.model)
    ids = torch.randint(0, model.transformer.wte.weight.shape[0], (args.batch, args.seq), generator=torch.Generator().manual_seed(2))
    times = []
    with torch.inference_mode():
        for _ in range(5):
            model(ids)
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(ids)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    config = torch.__config__.show()
    blas = "OpenBLAS" if "openblas" in config.lower() else ("MKL" if "mkl" in config.lower() else "unknown BLAS")
    print(json.dumps({"model": os.path.basename(args.model), "batch": args.batch, "seq": args.seq, "threads": args.threads,
                      "median_s": median, "tokens_per_s": args.batch * args.seq / median, "torch": torch.__version__,
                      "blas": blas}))


if __name__ == "__main__":
    main()
