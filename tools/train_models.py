#!/usr/bin/python3
"""Trains the embedded default model of AtpFast: a small GPT-2-style transformer on a synthetic
indirect-object-identification (IOI) task with a word vocabulary, and exports it to ONNX.

    /usr/bin/python3 tools/train_models.py            # writes src/AtpFast/Models/ioi-gpt2/{model.onnx,vocab.json,tasks.jsonl,config.json}

Held-out evaluation: every name is seen in training, but 20% of the (indirect object, subject) name pairs and
one whole template are never trained on; tasks.jsonl holds held-out prompt pairs (clean prompt, ABC-corrupted
noise prompt of equal token length, answer = indirect object, wrong = subject).
The word tokenisation rule (the C# WordLevelTokenizer implements the same): tokens = regex \\w+|[^\\w\\s].
"""
import json
import math
import os
import random
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "AtpFast", "Models", "ioi-gpt2")

NAMES = ["Mary", "John", "Alice", "Bob", "Sarah", "Tom", "Emma", "James", "Anna", "David", "Laura", "Mark",
         "Kate", "Paul", "Lucy", "Peter", "Julia", "Sam", "Grace", "Daniel", "Ella", "Henry", "Clara", "Jack",
         "Rose", "Adam", "Nora", "Luke", "Eva", "Oscar"]
PLACES = ["store", "park", "school", "garden", "station", "market", "beach", "library"]
OBJECTS = ["drink", "book", "ball", "letter", "gift", "key", "flower", "ticket"]
TRAIN_TEMPLATES = [
    "When {A} and {B} went to the {P}, {S} gave a {O} to",
    "After {A} and {B} went to the {P}, {S} handed a {O} to",
    "While {A} and {B} were at the {P}, {S} gave a {O} to",
    "Then, {A} and {B} had a long day at the {P}. {S} gave a {O} to",
]
HELD_OUT_TEMPLATE = "When {A} and {B} arrived at the {P}, {S} passed a {O} to"
TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text):
    return TOKEN.findall(text)


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored [in, out], y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q = q.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        z = F.softmax(scores, dim=-1) @ v
        return self.c_proj(z.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.c_fc = Conv1D(d, d_mlp)
        self.c_proj = Conv1D(d_mlp, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, heads, d_mlp):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, heads)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Mlp(d, d_mlp)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, vocab, d, layers, heads, d_mlp, positions):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(positions, d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        self.h = nn.ModuleList([Block(d, heads, d_mlp) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)


class Gpt2(nn.Module):
    def __init__(self, vocab, d=128, layers=4, heads=4, d_mlp=512, positions=32):
        super().__init__()
        self.transformer = Transformer(vocab, d, layers, heads, d_mlp, positions)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied unembedding

    def forward(self, input_ids):
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.transformer.wte(input_ids) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def fill(template, a, b, s, place, obj):
    return template.format(A=a, B=b, S=s, P=place, O=obj)


def make_example(rng, template, pair):
    io, s = pair
    a, b = (io, s) if rng.random() < 0.5 else (s, io)  # ABBA or BABA order
    return fill(template, a, b, s, rng.choice(PLACES), rng.choice(OBJECTS)), io, s


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = random.Random(0)
    pairs = [(x, y) for x in NAMES for y in NAMES if x != y]
    rng.shuffle(pairs)
    held_pairs = set(pairs[: len(pairs) // 5])
    train_pairs = [p for p in pairs if p not in held_pairs]

    vocab_words = set(["<pad>"])
    for t in TRAIN_TEMPLATES + [HELD_OUT_TEMPLATE]:
        for p in PLACES:
            for o in OBJECTS:
                vocab_words.update(tokens(fill(t, "X", "Y", "X", p, o)))
    vocab_words.discard("X")
    vocab_words.discard("Y")
    vocab = sorted(vocab_words - set(NAMES)) + NAMES
    vocab.remove("<pad>")
    vocab = ["<pad>"] + vocab
    index = {w: i for i, w in enumerate(vocab)}

    def encode(text):
        return [index[w] for w in tokens(text)]

    max_len = max(len(tokens(fill(t, "X", "Y", "X", "store", "drink"))) for t in TRAIN_TEMPLATES + [HELD_OUT_TEMPLATE])
    model = Gpt2(len(vocab), positions=32)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)

    def batch(n, templates, pair_pool):
        seqs, answers, wrongs = [], [], []
        for _ in range(n):
            text, io, s = make_example(rng, rng.choice(templates), rng.choice(pair_pool))
            seqs.append(encode(text))
            answers.append(index[io])
            wrongs.append(index[s])
        # Different templates have different lengths: left-pad is not used by the model, so group by length.
        return seqs, answers, wrongs

    def evaluate(templates, pair_pool, n=400):
        model.eval()
        correct, ld_sum = 0, 0.0
        with torch.no_grad():
            seqs, answers, wrongs = batch(n, templates, pair_pool)
            for ids, ans, wrong in zip(seqs, answers, wrongs):
                logits = model(torch.tensor([ids]))[0, -1]
                correct += int(logits.argmax().item() == ans)
                ld_sum += (logits[ans] - logits[wrong]).item()
        model.train()
        return correct / n, ld_sum / n

    steps = int(os.environ.get("IOI_STEPS", "1200"))
    for step in range(steps):
        seqs, answers, _ = batch(128, TRAIN_TEMPLATES, train_pairs)
        loss = 0.0
        by_len = {}
        for ids, ans in zip(seqs, answers):
            by_len.setdefault(len(ids), []).append((ids, ans))
        for group in by_len.values():
            x = torch.tensor([g[0] for g in group])
            y = torch.tensor([g[1] for g in group])
            logits = model(x)[:, -1]
            loss = loss + F.cross_entropy(logits, y, reduction="sum")
        loss = loss / len(seqs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f}", flush=True)

    train_acc, train_ld = evaluate(TRAIN_TEMPLATES, train_pairs)
    held_acc, held_ld = evaluate(TRAIN_TEMPLATES + [HELD_OUT_TEMPLATE], list(held_pairs))
    held_t_acc, held_t_ld = evaluate([HELD_OUT_TEMPLATE], list(held_pairs))
    print(f"train: accuracy {train_acc:.3f}, mean IO-S logit diff {train_ld:.2f}")
    print(f"held-out pairs: accuracy {held_acc:.3f}, mean IO-S logit diff {held_ld:.2f}")
    print(f"held-out pairs + held-out template: accuracy {held_t_acc:.3f}, mean IO-S logit diff {held_t_ld:.2f}")

    os.makedirs(OUT, exist_ok=True)
    model.eval()
    dummy = torch.tensor([encode(fill(TRAIN_TEMPLATES[0], "Mary", "John", "John", "store", "drink"))])
    torch.onnx.export(model, (dummy,), os.path.join(OUT, "model.onnx"), input_names=["input_ids"],
                      output_names=["logits"], dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                                             "logits": {0: "batch", 1: "sequence"}},
                      opset_version=14)
    with open(os.path.join(OUT, "vocab.json"), "w") as f:
        json.dump(vocab, f, indent=0)

    # Held-out prompt pairs: clean = held-out name pair; noise = the same sentence with three other names (ABC).
    task_rng = random.Random(1)
    held = sorted(held_pairs)
    task_rng.shuffle(held)
    with open(os.path.join(OUT, "tasks.jsonl"), "w") as f:
        for i, (io, s) in enumerate(held[:40]):
            template = (TRAIN_TEMPLATES + [HELD_OUT_TEMPLATE])[i % 5]
            place, obj = task_rng.choice(PLACES), task_rng.choice(OBJECTS)
            a, b = (io, s) if i % 2 == 0 else (s, io)
            others = [n for n in NAMES if n not in (io, s)]
            c, d, e = task_rng.sample(others, 3)
            clean = fill(template, a, b, s, place, obj)
            noise = fill(template, c, d, e, place, obj)
            assert len(tokens(clean)) == len(tokens(noise))
            f.write(json.dumps({"clean": clean, "noise": noise, "answer": io, "wrong": s}) + "\n")

    config = {"family": "gpt2", "vocab": len(vocab), "d_model": 128, "layers": 4, "heads": 4, "d_mlp": 512,
              "positions": 32, "activation": "gelu_tanh", "norm": "layernorm", "tied": True,
              "train_steps": steps, "train_accuracy": train_acc, "train_logit_diff": train_ld,
              "heldout_pairs_accuracy": held_acc, "heldout_pairs_logit_diff": held_ld,
              "heldout_template_accuracy": held_t_acc, "heldout_template_logit_diff": held_t_ld,
              "max_prompt_tokens": max_len, "torch": torch.__version__}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())
