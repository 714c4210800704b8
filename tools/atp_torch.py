#!/usr/bin/python3
"""Independent PyTorch reference for attribution patching (AtP, AtP+QKfix, AtP+GradDrop, AtP*) and exact
activation patching, on the three small transformer families AtpFast supports.

Library module: imported by tools/atp_reference.py (writes the test fixtures) and
tools/bench_torch_attribution.py (the PyTorch CPU benchmark peer). Nothing here runs on import.

Models: one explicit, hook-free forward (`AtpModel.run`) for
  - "gpt2"  : learned positions, pre-LayerNorm, sequential residual, GELU tanh, tied unembedding
  - "neox"  : parallel residual, fused per-head QKV, partial half-split rotary, GELU erf, untied
  - "llama" : RMSNorm, SwiGLU, grouped-query attention (HF repeat_kv), half-split rotary
built from weights read out of the ONNX files (the ONNX graphs are only a weight source).
Every node site goes through `site(kind, layer, x)`, which can replace the value (patching) and always
caches it, so one call gives the activations, and torch.autograd.grad on the cached tensors gives the
activation gradients (weights never require grad).

Sites (batch-first, per layer l):
  resid_pre [B,T,d]     residual stream entering block l
  q         [B,H,T,hd]  query after rotary       k, v [B,KV,T,hd]  per key/value head (before repeat_kv)
  pattern   [B,H,T,T]   attention probabilities   z    [B,H,T,hd]   softmax(QK^T/sqrt(hd)) V, before o-proj
  mlp_post  [B,T,dm]    MLP neuron after the nonlinearity (SwiGLU: silu(gate) * up)
  resid_post[B,T,d]     (cached only) residual after block l
"""
import json
import math
import os
import re

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IOI_DIR = os.path.join(ROOT, "src", "AtpFast", "Models", "ioi-gpt2")
NEOX_DIR = os.path.join(ROOT, "tests", "models", "neox-tiny")
STORIES_DIR = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "stories260K"))

NODE_KINDS = ("resid_pre", "q", "k", "v", "z", "mlp_post")
TOKEN = re.compile(r"\w+|[^\w\s]")


# ----------------------------------------------------------------------------------------------------------
# ONNX weight reading
# ----------------------------------------------------------------------------------------------------------
def onnx_initializers(path):
    """name -> float64 numpy array, plus name -> list of consumer node names (to map mangled names)."""
    graph = onnx.load(path).graph
    arrays = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    consumers = {}
    for node in graph.node:
        for i in node.input:
            if i in arrays:
                consumers.setdefault(i, []).append((node.name, node.op_type))
    constants = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            constants[node.name] = numpy_helper.to_array(node.attribute[0].t)
    return arrays, consumers, constants


def canonical_onnx_weights(path):
    """Torch parameter name -> array. Constant-folded MatMul weights ('onnx::MatMul_N') are renamed from
    the module path of the MatMul that consumes them ('/layers.0/mlp/up_proj/MatMul' ->
    'layers.0.mlp.up_proj.weight_io'); the suffix '_io' marks the [in, out] (x @ W) layout, i.e. the
    transpose of nn.Linear's [out, in]."""
    arrays, consumers, constants = onnx_initializers(path)
    out = {}
    for name, arr in arrays.items():
        if name.startswith("onnx::"):
            uses = consumers.get(name, [])
            if len(uses) != 1 or uses[0][1] != "MatMul" or not uses[0][0].endswith("/MatMul"):
                raise ValueError(f"cannot map initializer {name}: consumers {uses}")
            module = uses[0][0][1:-len("/MatMul")].replace("/", ".")
            out[module + ".weight_io"] = arr
        else:
            out[name] = arr
    return out, constants


# ----------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------
class Config:
    def __init__(self, **kw):
        self.family = kw["family"]               # gpt2 | neox | llama
        self.vocab = kw["vocab"]
        self.d_model = kw["d_model"]
        self.n_layers = kw["n_layers"]
        self.n_heads = kw["n_heads"]
        self.n_kv_heads = kw.get("n_kv_heads", self.n_heads)
        self.head_dim = kw.get("head_dim", self.d_model // self.n_heads)
        self.d_mlp = kw["d_mlp"]
        self.rotary_dims = kw.get("rotary_dims", 0)
        self.rotary_base = kw.get("rotary_base", 10000.0)
        self.eps = kw.get("eps", 1e-5)

    @property
    def group(self):
        return self.n_heads // self.n_kv_heads

    def as_dict(self):
        return dict(self.__dict__)


def _half_split_rotary(x, cos, sin, r):
    """x [..., T, hd]: rotate dims [0, r) with dim i paired with i + r/2; dims >= r pass through."""
    half = r // 2
    x1, x2, rest = x[..., :half], x[..., half:r], x[..., r:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest), dim=-1)


class AtpModel(torch.nn.Module):
    """Weights (plain tensors, no grad) in a canonical layout: every projection is [in, out] (y = x @ W + b)."""

    def __init__(self, cfg, weights, dtype=torch.float64):
        super().__init__()
        self.cfg = cfg
        self.w = {k: torch.as_tensor(np.ascontiguousarray(v)).to(dtype) for k, v in weights.items()}
        self.dtype = dtype
        self._rope = {}

    def to_dtype(self, dtype):
        return AtpModel(self.cfg, {k: v.double().numpy() for k, v in self.w.items()}, dtype)

    # -- pieces ----------------------------------------------------------------------------------------
    def _norm(self, x, prefix):
        if self.cfg.family == "llama":
            return self.w[prefix + ".w"] * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.eps))
        return F.layer_norm(x, (x.shape[-1],), self.w[prefix + ".w"], self.w[prefix + ".b"], self.cfg.eps)

    def _lin(self, x, name):
        y = x @ self.w[name + ".W"]
        b = self.w.get(name + ".b")
        return y if b is None else y + b

    def rope_tables(self, t):
        key = t
        if key not in self._rope:
            r = self.cfg.rotary_dims
            # float64 tables (the ONNX exports computed them in float32; difference ~1e-7 relative)
            inv_freq = 1.0 / (self.cfg.rotary_base ** (torch.arange(0, r, 2, dtype=torch.float64) / r))
            freqs = torch.arange(t, dtype=torch.float64).unsqueeze(1) * inv_freq.unsqueeze(0)
            self._rope[key] = (freqs.cos().to(self.dtype), freqs.sin().to(self.dtype))
        return self._rope[key]

    # -- forward ---------------------------------------------------------------------------------------
    def run(self, ids, patch=None, detach_layer=None, grad=False, last_only=False):
        """ids: LongTensor [B, T]. patch: {(kind, layer): (mask, src) or callable(x) -> x}; a (mask, src)
        pair replaces x by torch.where(mask, src, x) (mask/src broadcast against x).
        detach_layer: l -> resid_post_l = resid_pre_l + (resid_post_l - resid_pre_l).detach() (GradDrop).
        grad: make the embedding output require grad so activation gradients can be taken.
        Returns (logits [B, T, V] or [B, V] if last_only, cache {(kind, layer): tensor})."""
        cfg = self.cfg
        cache = {}

        def site(kind, layer, x):
            if patch is not None:
                p = patch.get((kind, layer))
                if p is not None:
                    if callable(p):
                        x = p(x)
                    else:
                        mask, src = p
                        x = torch.where(mask, src, x)
            cache[(kind, layer)] = x
            return x

        b, t = ids.shape
        x = self.w["embed"][ids]
        if cfg.family == "gpt2":
            x = x + self.w["pos_embed"][:t].unsqueeze(0)
        if grad:
            x = x.detach().requires_grad_(True)
        H, KV, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        scale = 1.0 / math.sqrt(hd)
        for l in range(cfg.n_layers):
            p = f"l{l}."
            x = site("resid_pre", l, x)
            h = self._norm(x, p + "ln1")
            q = self._lin(h, p + "q").view(b, t, H, hd).transpose(1, 2)
            k = self._lin(h, p + "k").view(b, t, KV, hd).transpose(1, 2)
            v = self._lin(h, p + "v").view(b, t, KV, hd).transpose(1, 2)
            if cfg.rotary_dims:
                cos, sin = self.rope_tables(t)
                q = _half_split_rotary(q, cos, sin, cfg.rotary_dims)
                k = _half_split_rotary(k, cos, sin, cfg.rotary_dims)
            q = site("q", l, q)
            k = site("k", l, k)
            v = site("v", l, v)
            if KV != H:  # HF repeat_kv: kv head j serves query heads j*group .. j*group+group-1
                g = H // KV
                kr = k[:, :, None].expand(b, KV, g, t, hd).reshape(b, H, t, hd)
                vr = v[:, :, None].expand(b, KV, g, t, hd).reshape(b, H, t, hd)
            else:
                kr, vr = k, v
            scores = (q @ kr.transpose(-1, -2)) * scale
            scores = scores.masked_fill(~causal, float("-inf"))
            a = site("pattern", l, torch.softmax(scores, dim=-1))
            z = site("z", l, a @ vr)
            attn_out = self._lin(z.transpose(1, 2).reshape(b, t, H * hd), p + "o")
            if cfg.family == "neox":
                m_in = self._norm(x, p + "ln2")
            else:
                mid = x + attn_out
                m_in = self._norm(mid, p + "ln2")
            if cfg.family == "llama":
                post = F.silu(self._lin(m_in, p + "gate")) * self._lin(m_in, p + "up")
            else:
                pre = self._lin(m_in, p + "in")
                post = F.gelu(pre, approximate="tanh") if cfg.family == "gpt2" else F.gelu(pre)
            post = site("mlp_post", l, post)
            mlp_out = self._lin(post, p + "out")
            if cfg.family == "neox":
                y = x + attn_out + mlp_out
            else:
                y = mid + mlp_out
            if detach_layer == l:
                y = x + (y - x).detach()
            cache[("resid_post", l)] = y
            x = y
        if last_only:
            x = x[:, -1]
        logits = self._norm(x, "lnf") @ self.w["unembed"]
        return logits, cache


# ----------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------
def load_ioi_gpt2(path=None, dtype=torch.float64):
    path = path or os.path.join(IOI_DIR, "model.onnx")
    raw, _ = canonical_onnx_weights(path)
    wte = raw["transformer.wte.weight"]
    vocab, d = wte.shape
    layers = len({k.split(".")[2] for k in raw if k.startswith("transformer.h.")})
    heads = 4  # train_models.Gpt2 default (config.json: heads 4)
    cfg_json = json.load(open(os.path.join(os.path.dirname(path), "config.json")))
    heads = cfg_json.get("heads", heads)
    d_mlp = raw["transformer.h.0.mlp.c_fc.weight"].shape[1]
    w = {"embed": wte, "pos_embed": raw["transformer.wpe.weight"], "unembed": wte.T.copy(),
         "lnf.w": raw["transformer.ln_f.weight"], "lnf.b": raw["transformer.ln_f.bias"]}
    lm = raw.get("lm_head.weight_io")
    if lm is not None and not np.array_equal(lm, wte.T):
        raise ValueError("ioi-gpt2: lm_head MatMul weight is not wte^T (expected tied)")
    for l in range(layers):
        p, o = f"transformer.h.{l}.", f"l{l}."
        ca, cb = raw[p + "attn.c_attn.weight"], raw[p + "attn.c_attn.bias"]
        w[o + "q.W"], w[o + "k.W"], w[o + "v.W"] = ca[:, :d], ca[:, d:2 * d], ca[:, 2 * d:]
        w[o + "q.b"], w[o + "k.b"], w[o + "v.b"] = cb[:d], cb[d:2 * d], cb[2 * d:]
        w[o + "o.W"], w[o + "o.b"] = raw[p + "attn.c_proj.weight"], raw[p + "attn.c_proj.bias"]
        w[o + "ln1.w"], w[o + "ln1.b"] = raw[p + "ln_1.weight"], raw[p + "ln_1.bias"]
        w[o + "ln2.w"], w[o + "ln2.b"] = raw[p + "ln_2.weight"], raw[p + "ln_2.bias"]
        w[o + "in.W"], w[o + "in.b"] = raw[p + "mlp.c_fc.weight"], raw[p + "mlp.c_fc.bias"]
        w[o + "out.W"], w[o + "out.b"] = raw[p + "mlp.c_proj.weight"], raw[p + "mlp.c_proj.bias"]
    cfg = Config(family="gpt2", vocab=vocab, d_model=d, n_layers=layers, n_heads=heads, d_mlp=d_mlp)
    return AtpModel(cfg, w, dtype)


def neox_weights_from_state(sd, heads):
    """sd: torch-style names (nn.Linear weights [out, in]) -> canonical dict. Used both for the ONNX
    initializers (after transposing the '_io' ones back) and for a regenerated NeoX module."""
    d = sd["gpt_neox.embed_in.weight"].shape[1]
    hd = d // heads
    layers = len({k.split(".")[2] for k in sd if k.startswith("gpt_neox.layers.")})
    w = {"embed": sd["gpt_neox.embed_in.weight"], "unembed": sd["embed_out.weight"].T.copy(),
         "lnf.w": sd["gpt_neox.final_layer_norm.weight"], "lnf.b": sd["gpt_neox.final_layer_norm.bias"]}
    for l in range(layers):
        p, o = f"gpt_neox.layers.{l}.", f"l{l}."
        qkv = sd[p + "attention.query_key_value.weight"].T.reshape(d, heads, 3, hd)   # [in, (head, {q,k,v}, i)]
        qkv_b = sd[p + "attention.query_key_value.bias"].reshape(heads, 3, hd)
        for c, nm in enumerate("qkv"):
            w[o + nm + ".W"] = qkv[:, :, c, :].reshape(d, heads * hd).copy()
            w[o + nm + ".b"] = qkv_b[:, c, :].reshape(heads * hd).copy()
        w[o + "o.W"], w[o + "o.b"] = sd[p + "attention.dense.weight"].T.copy(), sd[p + "attention.dense.bias"]
        w[o + "ln1.w"], w[o + "ln1.b"] = sd[p + "input_layernorm.weight"], sd[p + "input_layernorm.bias"]
        w[o + "ln2.w"], w[o + "ln2.b"] = sd[p + "post_attention_layernorm.weight"], sd[p + "post_attention_layernorm.bias"]
        w[o + "in.W"], w[o + "in.b"] = sd[p + "mlp.dense_h_to_4h.weight"].T.copy(), sd[p + "mlp.dense_h_to_4h.bias"]
        w[o + "out.W"], w[o + "out.b"] = sd[p + "mlp.dense_4h_to_h.weight"].T.copy(), sd[p + "mlp.dense_4h_to_h.bias"]
    return w, layers


def neox_state_from_onnx(path):
    """ONNX initializers -> torch-style state dict (names as in export_test_models.NeoX)."""
    raw, _ = canonical_onnx_weights(path)
    sd = {}
    for k, v in raw.items():
        if k.startswith("layers."):  # MatMul scopes omit the NeoXBody prefix ('/layers.0/attention/...')
            k = "gpt_neox." + k
        if k.endswith(".weight_io"):
            sd[k[: -len("_io")]] = v.T.copy()
        else:
            sd[k] = v
    return sd


def load_neox(path=None, dtype=torch.float64, state=None):
    path = path or os.path.join(NEOX_DIR, "model.onnx")
    facts = json.load(open(os.path.join(os.path.dirname(path), "config.json")))
    sd = state if state is not None else neox_state_from_onnx(path)
    w, layers = neox_weights_from_state(sd, facts["heads"])
    cfg = Config(family="neox", vocab=facts["vocab"], d_model=facts["d_model"], n_layers=layers,
                 n_heads=facts["heads"], d_mlp=facts["d_mlp"], rotary_dims=facts["rotary_dims"],
                 rotary_base=facts["rotary_base"])
    return AtpModel(cfg, w, dtype)


def load_stories(path=None, dtype=torch.float64):
    path = path or os.path.join(STORIES_DIR, "model.onnx")
    ref = json.load(open(os.path.join(os.path.dirname(path), "reference.json")))
    c = ref["config"]
    raw, constants = canonical_onnx_weights(path)
    hd = c["dim"] // c["nh"]
    # rotary: the graph holds inv_freq as the constant '/Constant_5' ([1, hd/2]); check base 10000.
    inv = constants.get("/Constant_5")
    base = 10000.0
    expect = 1.0 / (base ** (np.arange(0, hd, 2) / hd))
    if inv is None or not np.allclose(inv.ravel(), expect, rtol=1e-6):
        raise ValueError(f"stories260K: unexpected rotary inv_freq constant {inv}")
    emb = raw["embed_tokens.weight"]
    lm = raw["lm_head.weight_io"]
    if not np.array_equal(lm, emb.T):
        raise ValueError("stories260K: lm_head is not embed_tokens^T (expected tied)")
    w = {"embed": emb, "unembed": lm, "lnf.w": raw["norm.weight"]}
    for l in range(c["nl"]):
        p, o = f"layers.{l}.", f"l{l}."
        for src, dst in (("self_attn.q_proj", "q"), ("self_attn.k_proj", "k"), ("self_attn.v_proj", "v"),
                         ("self_attn.o_proj", "o"), ("mlp.gate_proj", "gate"), ("mlp.up_proj", "up"),
                         ("mlp.down_proj", "out")):
            w[o + dst + ".W"] = raw[p + src + ".weight_io"]
        w[o + "ln1.w"] = raw[p + "input_layernorm.weight"]
        w[o + "ln2.w"] = raw[p + "post_attention_layernorm.weight"]
    cfg = Config(family="llama", vocab=c["vocab"], d_model=c["dim"], n_layers=c["nl"], n_heads=c["nh"],
                 n_kv_heads=c["nkv"], d_mlp=c["hid"], rotary_dims=hd, rotary_base=base, eps=1e-5)
    return AtpModel(cfg, w, dtype), ref


# ----------------------------------------------------------------------------------------------------------
# Metrics (on last-position logits [B, V])
# ----------------------------------------------------------------------------------------------------------
class MetricCtx:
    """Per-pair constants a metric needs: answer/wrong ids, the clean run's last-position log-probs (KL) and
    the unpatched clean/noise logit differences (normalised logit difference). Tensors [B] / [B, V]."""

    def __init__(self, answer, wrong, clean_logprobs=None, ld_clean=None, ld_noise=None):
        self.answer, self.wrong = answer, wrong
        self.clean_logprobs, self.ld_clean, self.ld_noise = clean_logprobs, ld_clean, ld_noise


def metric(name, last_logits, ctx):
    idx = torch.arange(last_logits.shape[0])
    if name == "logit-diff":
        return last_logits[idx, ctx.answer] - last_logits[idx, ctx.wrong]
    if name == "logprob":
        return torch.log_softmax(last_logits, -1)[idx, ctx.answer]
    if name == "prob":
        return torch.softmax(last_logits, -1)[idx, ctx.answer]
    if name == "kl":
        lp = torch.log_softmax(last_logits, -1)
        pc = ctx.clean_logprobs.exp()
        return (pc * (ctx.clean_logprobs - lp)).sum(-1)
    if name == "norm-logit-diff":
        ld = last_logits[idx, ctx.answer] - last_logits[idx, ctx.wrong]
        return (ld - ctx.ld_noise) / (ctx.ld_clean - ctx.ld_noise)
    raise ValueError(name)


# ----------------------------------------------------------------------------------------------------------
# Nodes
# ----------------------------------------------------------------------------------------------------------
class Node:
    __slots__ = ("kind", "layer", "index", "pos")

    def __init__(self, kind, layer, index, pos):
        self.kind, self.layer, self.index, self.pos = kind, layer, index, pos  # pos None = all positions

    @property
    def name(self):
        p = "*" if self.pos is None else str(self.pos)
        if self.kind == "resid_pre":
            return f"L{self.layer}.resid_pre@{p}"
        if self.kind == "mlp_post":
            return f"L{self.layer}.mlp.n{self.index}@{p}"
        return f"L{self.layer}.H{self.index}.{self.kind}@{p}"


def make_nodes(cfg, t, neuron_stride=1, kinds=NODE_KINDS):
    """Fixed order: layer, then kind (resid_pre, q, k, v, z, mlp_post), then head/neuron index, then
    position 0..T-1 followed by '*'."""
    nodes = []
    for l in range(cfg.n_layers):
        for kind in NODE_KINDS:
            if kind not in kinds:
                continue
            if kind == "resid_pre":
                idxs = [None]
            elif kind in ("q", "z"):
                idxs = range(cfg.n_heads)
            elif kind in ("k", "v"):
                idxs = range(cfg.n_kv_heads)
            else:
                idxs = range(0, cfg.d_mlp, neuron_stride)
            for i in idxs:
                for pos in list(range(t)) + [None]:
                    nodes.append(Node(kind, l, i, pos))
    return nodes


def build_patch(nodes, src_cache, t, dtype=torch.bool):
    """Batched patch: row r (r = 0..len(nodes)-1) of the batch patches nodes[r] with the source value
    (src_cache holds batch-1 tensors). Returns {(kind, layer): (mask [R, ...], src [1, ...])}."""
    r = len(nodes)
    masks = {}
    for row, n in enumerate(nodes):
        key = (n.kind, n.layer)
        if key not in masks:
            masks[key] = torch.zeros((r,) + tuple(src_cache[key].shape[1:]), dtype=torch.bool)
        m = masks[key]
        pos = slice(None) if n.pos is None else n.pos
        if n.kind == "resid_pre":
            m[row, pos, :] = True
        elif n.kind == "mlp_post":
            m[row, pos, n.index] = True
        else:
            m[row, n.index, pos, :] = True
    return {k: (m, src_cache[k]) for k, m in masks.items()}


def index_patch(node, src_cache):
    """TransformerLens-style hook for one node: clone the activation and overwrite the node's slice."""
    key = (node.kind, node.layer)
    src = src_cache[key]
    pos = slice(None) if node.pos is None else node.pos

    def hook(x):
        x = x.clone()
        if node.kind == "resid_pre":
            x[:, pos, :] = src[:, pos, :]
        elif node.kind == "mlp_post":
            x[:, pos, node.index] = src[:, pos, node.index]
        else:
            x[:, node.index, pos, :] = src[:, node.index, pos, :]
        return x

    return {key: hook}


class NodeIndex:
    """Maps nodes to gathers on per-(kind, layer) arrays [B, F, T+1] (F = heads / kv heads / neurons / 1;
    column T = the all-positions aggregate)."""

    def __init__(self, nodes, cfg, t):
        self.nodes, self.t = nodes, t
        self.groups = {}  # (kind, layer) -> (node positions in list, feature idx, pos idx)
        for i, n in enumerate(nodes):
            g = self.groups.setdefault((n.kind, n.layer), ([], [], []))
            g[0].append(i)
            g[1].append(0 if n.index is None else n.index)
            g[2].append(t if n.pos is None else n.pos)
        self.groups = {k: tuple(torch.tensor(x) for x in v) for k, v in self.groups.items()}

    def gather(self, arrays, batch):
        """arrays: {(kind, layer): tensor [B, F, T+1]} -> [B, N]."""
        out = torch.zeros(batch, len(self.nodes), dtype=torch.float64)
        for key, (where, f, p) in self.groups.items():
            a = arrays[key]
            out[:, where] = a[:, f, p].to(torch.float64)
        return out


def _with_total(a):
    """[B, F, T] -> [B, F, T+1] with the per-position sum appended."""
    return torch.cat((a, a.sum(-1, keepdim=True)), dim=-1)


def atp_arrays(base, src, grads, layers, kinds=NODE_KINDS):
    """Per-(kind, layer) arrays [B, F, T+1] of delta . grad (grads: {(kind, layer): tensor})."""
    out = {}
    for l in layers:
        for kind in kinds:
            key = (kind, l)
            d = src[key] - base[key]
            prod = d * grads[key]
            if kind == "resid_pre":
                a = prod.sum(-1).unsqueeze(1)          # [B, 1, T]
            elif kind == "mlp_post":
                a = prod.transpose(1, 2)              # [B, dm, T]
            else:
                a = prod.sum(-1)                      # [B, H|KV, T]
            out[key] = _with_total(a)
    return out


# ----------------------------------------------------------------------------------------------------------
# QK fix (brute-force re-softmax; the spec's closed form is only used as a cross-check)
# ----------------------------------------------------------------------------------------------------------
def _masked_softmax(scores):
    t = scores.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)


def _rep(k, group):
    return k.repeat_interleave(group, dim=1) if group > 1 else k


def qk_fix(q_b, k_b, q_s, k_s, g, group, a_ref=None):
    """q_* [B,H,T,hd], k_* [B,KV,T,hd] (post-rotary base/source), g = dL/dA [B,H,T,T].
    Returns (Iq [B,H,T+1], Ik [B,KV,T+1]) (column T: all positions; for q, the sum of the per-row terms;
    for k, every key of the kv head replaced at once and every row re-softmaxed).
    Key term: brute force, one re-softmax per replaced key, rows t >= s only."""
    b, h, t, hd = q_b.shape
    kv = k_b.shape[1]
    scale = 1.0 / math.sqrt(hd)
    kb, ks = _rep(k_b, group), _rep(k_s, group)
    s_base = (q_b @ kb.transpose(-1, -2)) * scale
    a = _masked_softmax(s_base)
    if a_ref is not None:
        err = (a - a_ref).abs().max().item()
        if err > 1e-12:
            raise AssertionError(f"recomputed pattern differs from the cached one by {err}")
    # queries: row t with q_t replaced (rows independent)
    aq = _masked_softmax((q_s @ kb.transpose(-1, -2)) * scale)
    iq = ((aq - a) * g).sum(-1)                                     # [B,H,T]
    iq = _with_total(iq)
    # keys: one key replaced at a time
    s_new = (q_b @ ks.transpose(-1, -2)) * scale                   # column s = q_t . k_s^source
    ik_h = torch.zeros(b, h, t + 1, dtype=q_b.dtype)
    for s in range(t):
        sc = s_base.clone()
        sc[:, :, :, s] = s_new[:, :, :, s]
        a2 = _masked_softmax(sc)
        ik_h[:, :, s] = ((a2 - a) * g)[:, :, s:, :].sum((-1, -2))   # rows t >= s
    a_all = _masked_softmax(s_new)
    ik_h[:, :, t] = ((a_all - a) * g).sum((-1, -2))
    ik = ik_h.view(b, kv, group, t + 1).sum(2)
    return iq, ik


def qk_fix_batched(q_b, k_b, q_s, k_s, g, group):
    """Same quantity as qk_fix (brute-force re-softmax), with every single-key replacement done in one
    [B, H, S, T, T] softmax instead of a loop over s (used by the benchmark; checked equal to qk_fix)."""
    b, h, t, hd = q_b.shape
    kv = k_b.shape[1]
    scale = 1.0 / math.sqrt(hd)
    kb, ks = _rep(k_b, group), _rep(k_s, group)
    causal = torch.ones(t, t, dtype=torch.bool, device=q_b.device).tril()
    s_base = ((q_b @ kb.transpose(-1, -2)) * scale).masked_fill(~causal, float("-inf"))
    a = torch.softmax(s_base, -1)
    aq = torch.softmax(((q_s @ kb.transpose(-1, -2)) * scale).masked_fill(~causal, float("-inf")), -1)
    iq = _with_total(((aq - a) * g).sum(-1))
    s_new = ((q_b @ ks.transpose(-1, -2)) * scale).masked_fill(~causal, float("-inf"))
    eye = torch.eye(t, dtype=torch.bool, device=q_b.device)                   # [S, s']
    sc = torch.where(eye[:, None, :], s_new[:, :, None], s_base[:, :, None])  # [B,H,S,T,T]
    rows = causal.T[:, :, None]                                                # [S, T, 1]: t >= s
    diff = (torch.softmax(sc, -1) - a[:, :, None]) * g[:, :, None]
    ik_h = (diff * rows).sum((-1, -2))                                         # [B,H,S]
    a_all = torch.softmax(s_new, -1)
    ik_h = torch.cat((ik_h, ((a_all - a) * g).sum((-1, -2)).unsqueeze(-1)), -1)
    return iq, ik_h.view(b, kv, group, t + 1).sum(2)


def _leave_one_out(x):
    """sum over s' != s along the last axis, as prefix + suffix sums (no subtraction)."""
    zero = torch.zeros_like(x[..., :1])
    prefix = torch.cat((zero, x.cumsum(-1)[..., :-1]), -1)
    suffix = torch.cat((x.flip(-1).cumsum(-1).flip(-1)[..., 1:], zero), -1)
    return prefix + suffix


def qk_key_closed_form(q_b, k_b, k_s, g, group, stable=True):
    """Spec section 3 closed form for all single-key terms (used only as a self-check). [B,KV,T].
    row_effect(t,s) = E_ts (g_ts - G_t) / (1 + E_ts), E = A * expm1(Delta), G_t = sum_s' A_ts' g_ts'.
    stable=False evaluates that literally. On a saturated row (A_ts ~ 1, Delta << 0) both g_ts - G_t and
    1 + E_ts = (1 - A_ts) + A_ts e^Delta are differences of nearly equal numbers whose ratio is then
    multiplied by E ~ -1, so the literal form loses most digits exactly where the QK fix matters.
    stable=True uses the identical quantities written without cancellation:
      g_ts - G_t = sum_{s'!=s} A_ts' g_ts - sum_{s'!=s} A_ts' g_ts'   and
      1 + E_ts   = sum_{s'!=s} A_ts' + A_ts e^Delta,
    with the leave-one-out sums computed from prefix and suffix sums."""
    b, h, t, hd = q_b.shape
    kv = k_b.shape[1]
    scale = 1.0 / math.sqrt(hd)
    kb, ks = _rep(k_b, group), _rep(k_s, group)
    s_base = (q_b @ kb.transpose(-1, -2)) * scale
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    a = _masked_softmax(s_base)
    dlt = ((q_b @ (ks - kb).transpose(-1, -2)) * scale).masked_fill(~causal, 0.0)
    e = a * torch.expm1(dlt)
    if stable:
        other = _leave_one_out(a)
        num = other * g - _leave_one_out(a * g)
        denom = other + a * torch.exp(dlt)
    else:
        num = g - (a * g).sum(-1, keepdim=True)
        denom = 1 + e
    ik_h = (e * num / denom).sum(-2)                                            # [B,H,T]
    return ik_h.view(b, kv, group, t).sum(2)


def qk_arrays(base, src, pattern_grads, layers, group, batched=False):
    out = {}
    for l in layers:
        if batched:
            iq, ik = qk_fix_batched(base[("q", l)], base[("k", l)], src[("q", l)], src[("k", l)],
                                    pattern_grads[("pattern", l)], group)
        else:
            iq, ik = qk_fix(base[("q", l)], base[("k", l)], src[("q", l)], src[("k", l)],
                            pattern_grads[("pattern", l)], group, a_ref=base[("pattern", l)])
        out[("q", l)], out[("k", l)] = iq, ik
    return out


# ----------------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------------
def site_keys(n_layers, kinds=NODE_KINDS + ("pattern",)):
    return [(k, l) for l in range(n_layers) for k in kinds]


def activation_grads(value, cache, keys, retain_graph=False):
    gs = torch.autograd.grad(value, [cache[k] for k in keys], retain_graph=retain_graph, allow_unused=True)
    return {k: (torch.zeros_like(cache[k]) if g is None else g) for k, g in zip(keys, gs)}


def graddrop_grads_literal(model, ids, metric_fn):
    """For each layer l: a fresh forward with block l's write detached and one backward.
    Returns list over l of {(kind, layer): grad}."""
    keys = site_keys(model.cfg.n_layers)
    out = []
    for l in range(model.cfg.n_layers):
        logits, cache = model.run(ids, detach_layer=l, grad=True, last_only=True)
        out.append(activation_grads(metric_fn(logits).sum(), cache, keys))
    return out


def graddrop_grads_shared(model, cache, value):
    """Same quantity from ONE forward (cache of a grad=True run, value = sum of the metric): the ordinary
    backward gives dL/dresid_post_l; with block l's write detached, dL_l/dresid_pre_l = dL/dresid_post_l,
    the sites of layers > l keep their ordinary gradient, layer l's internal sites get 0, and the sites of
    layers < l get the vector-Jacobian product of resid_pre_l with dL/dresid_post_l (one partial backward)."""
    n = model.cfg.n_layers
    keys = site_keys(n)
    post_keys = [("resid_post", l) for l in range(n)]
    normal = activation_grads(value, cache, keys + post_keys, retain_graph=True)
    out = []
    for l in range(n):
        gl = {}
        for key in keys:
            if key[1] > l:
                gl[key] = normal[key]
            elif key[1] == l:
                gl[key] = normal[("resid_post", l)] if key[0] == "resid_pre" else torch.zeros_like(cache[key])
        earlier = [k for k in keys if k[1] < l]
        if earlier:
            gs = torch.autograd.grad(cache[("resid_pre", l)], [cache[k] for k in earlier],
                                     grad_outputs=normal[("resid_post", l)], retain_graph=True, allow_unused=True)
            for k, g in zip(earlier, gs):
                gl[k] = torch.zeros_like(cache[k]) if g is None else g
        out.append(gl)
    return normal, out


# ----------------------------------------------------------------------------------------------------------
# Tokenisers / prompt pairs
# ----------------------------------------------------------------------------------------------------------
def ioi_pairs(n=2, length=14):
    vocab = json.load(open(os.path.join(IOI_DIR, "vocab.json")))
    index = {w: i for i, w in enumerate(vocab)}

    def enc(text):
        return [index[w] for w in TOKEN.findall(text)]

    pairs = []
    for line in open(os.path.join(IOI_DIR, "tasks.jsonl")):
        task = json.loads(line)
        clean, noise = enc(task["clean"]), enc(task["noise"])
        if len(clean) != length:
            continue
        assert len(noise) == length
        pairs.append({"clean": clean, "noise": noise, "answer": index[task["answer"]],
                      "wrong": index[task["wrong"]], "text": task})
        if len(pairs) == n:
            break
    return pairs
