#!/usr/bin/python3
"""Exports small random-weight test models that cover the architecture variants the importer must recover.

    /usr/bin/python3 tools/export_test_models.py      # writes tests/models/<name>/{model.onnx,config.json}

- neox-tiny: GPT-NeoX style — fused per-head QKV ([heads, 3, head_dim] output layout, as Hugging Face's
  GPTNeoXAttention), partial rotary (rotary_pct 0.25, half-split), parallel residual, GELU erf, untied
  unembedding, exported with opset 17 so that LayerNorm is a single LayerNormalization op.
- llama-interleaved: Llama style — RMSNorm, SwiGLU, grouped-query attention (4 heads, 2 kv heads),
  interleaved rotary (dims 2i and 2i+1 pair), untied unembedding, opset 14.
Weights are random (seeded) and scaled so that logits are O(1-10): these models check import and forward
parity, not behaviour. config.json records the facts for tests; the importer never reads it.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rotary_tables(t, rotary_dims, base, device):
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dims, 2, dtype=torch.float32, device=device) / rotary_dims))
    freqs = torch.arange(t, dtype=torch.float32, device=device).unsqueeze(1) * inv_freq.unsqueeze(0)
    return freqs.cos(), freqs.sin()  # [t, rotary_dims / 2]


def rotate_half_split(x, cos, sin):
    """x [b, h, t, R]: dim i pairs with i + R/2."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def rotate_interleaved(x, cos, sin):
    """x [b, h, t, R]: dim 2i pairs with 2i + 1."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out1 = x1 * cos - x2 * sin
    out2 = x2 * cos + x1 * sin
    return torch.stack((out1, out2), dim=-1).flatten(-2)


def causal_attention(q, k, v):
    t = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    return F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v


class NeoXAttention(nn.Module):
    def __init__(self, d, heads, rotary_pct, base):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.rotary_dims = int(self.head_dim * rotary_pct)
        self.base = base
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.query_key_value(x).view(b, t, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv[..., : self.head_dim], qkv[..., self.head_dim: 2 * self.head_dim], qkv[..., 2 * self.head_dim:]
        cos, sin = rotary_tables(t, self.rotary_dims, self.base, x.device)
        r = self.rotary_dims
        q = torch.cat((rotate_half_split(q[..., :r], cos, sin), q[..., r:]), dim=-1)
        k = torch.cat((rotate_half_split(k[..., :r], cos, sin), k[..., r:]), dim=-1)
        z = causal_attention(q, k, v)
        return self.dense(z.transpose(1, 2).reshape(b, t, d))


class NeoXMlp(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(d, d_mlp)
        self.dense_4h_to_h = nn.Linear(d_mlp, d)

    def forward(self, x):
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class NeoXLayer(nn.Module):
    def __init__(self, d, heads, d_mlp, rotary_pct, base):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d, eps=1e-5)
        self.post_attention_layernorm = nn.LayerNorm(d, eps=1e-5)
        self.attention = NeoXAttention(d, heads, rotary_pct, base)
        self.mlp = NeoXMlp(d, d_mlp)

    def forward(self, x):
        return x + self.attention(self.input_layernorm(x)) + self.mlp(self.post_attention_layernorm(x))


class NeoXBody(nn.Module):
    def __init__(self, vocab, d, layers, heads, d_mlp, rotary_pct, base):
        super().__init__()
        self.embed_in = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([NeoXLayer(d, heads, d_mlp, rotary_pct, base) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d, eps=1e-5)


class NeoX(nn.Module):
    def __init__(self, vocab=67, d=64, layers=3, heads=4, d_mlp=256, rotary_pct=0.25, base=10000.0):
        super().__init__()
        self.gpt_neox = NeoXBody(vocab, d, layers, heads, d_mlp, rotary_pct, base)
        self.embed_out = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.gpt_neox.embed_in(input_ids)
        for layer in self.gpt_neox.layers:
            x = layer(x)
        return self.embed_out(self.gpt_neox.final_layer_norm(x))


class RmsNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class LlamaAttention(nn.Module):
    def __init__(self, d, heads, kv_heads, base):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.base = heads, kv_heads, d // heads, base
        self.q_proj = nn.Linear(d, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, d, bias=False)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rotary_tables(t, self.head_dim, self.base, x.device)
        q, k = rotate_interleaved(q, cos, sin), rotate_interleaved(k, cos, sin)
        # Hugging Face's repeat_kv: each key/value head serves `group` consecutive query heads.
        group = self.heads // self.kv_heads
        k = k[:, :, None].expand(b, self.kv_heads, group, t, self.head_dim).reshape(b, self.heads, t, self.head_dim)
        v = v[:, :, None].expand(b, self.kv_heads, group, t, self.head_dim).reshape(b, self.heads, t, self.head_dim)
        z = causal_attention(q, k, v)
        return self.o_proj(z.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class LlamaMlp(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.gate_proj = nn.Linear(d, d_mlp, bias=False)
        self.up_proj = nn.Linear(d, d_mlp, bias=False)
        self.down_proj = nn.Linear(d_mlp, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, d, heads, kv_heads, d_mlp, base):
        super().__init__()
        self.input_layernorm = RmsNorm(d)
        self.self_attn = LlamaAttention(d, heads, kv_heads, base)
        self.post_attention_layernorm = RmsNorm(d)
        self.mlp = LlamaMlp(d, d_mlp)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    def __init__(self, vocab, d, layers, heads, kv_heads, d_mlp, base):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([LlamaLayer(d, heads, kv_heads, d_mlp, base) for _ in range(layers)])
        self.norm = RmsNorm(d)


class Llama(nn.Module):
    def __init__(self, vocab=67, d=64, layers=2, heads=4, kv_heads=2, d_mlp=160, base=500000.0):
        super().__init__()
        self.model = LlamaBody(vocab, d, layers, heads, kv_heads, d_mlp, base)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x)
        return self.lm_head(self.model.norm(x))


def randomise(model):
    """Random weights large enough that attention is not uniform and logits are O(1-10)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if "norm" in name and "bias" not in name else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))


def export(model, name, opset, facts):
    out = os.path.join(ROOT, "tests", "models", name)
    os.makedirs(out, exist_ok=True)
    model.eval()
    dummy = torch.randint(0, facts["vocab"], (1, 7), generator=torch.Generator().manual_seed(1))
    torch.onnx.export(model, (dummy,), os.path.join(out, "model.onnx"), input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}},
                      opset_version=opset)
    with torch.no_grad():
        scale = model(dummy).abs().max().item()
    facts = dict(facts, opset=opset, max_abs_logit_probe=scale, torch=torch.__version__)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(facts, f, indent=2)
    print(f"wrote {out} (max |logit| on a probe: {scale:.2f})")


def main():
    torch.manual_seed(0)
    neox = NeoX()
    randomise(neox)
    export(neox, "neox-tiny", 17, {"family": "gptneox", "vocab": 67, "d_model": 64, "layers": 3, "heads": 4,
                                     "kv_heads": 4, "head_dim": 16, "d_mlp": 256, "rotary": "half-split",
                                     "rotary_dims": 4, "rotary_base": 10000.0, "parallel_residual": True,
                                     "tied": False, "norm": "layernorm", "activation": "gelu_erf"})
    llama = Llama()
    randomise(llama)
    export(llama, "llama-interleaved", 14, {"family": "llama", "vocab": 67, "d_model": 64, "layers": 2, "heads": 4,
                                              "kv_heads": 2, "head_dim": 16, "d_mlp": 160, "rotary": "interleaved",
                                              "rotary_dims": 16, "rotary_base": 500000.0, "parallel_residual": False,
                                              "tied": False, "norm": "rmsnorm", "activation": "swiglu"})


if __name__ == "__main__":
    main()
