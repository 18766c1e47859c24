"""The float64 oracle: a sympow model computed with the quadratic form of MODEL.md.

No state, no chunks, no expansion: every weight w[t,s] = (scale q_t.k_s)^p exp(G_t - G_s) is
formed explicitly, so this shares nothing with the backends it checks.
"""
import json
import os

import numpy as np

import _paths  # noqa: F401  (makes model/train importable)
import safetensors_io

EPSILON = 1e-6


class Model:
    def __init__(self, directory):
        with open(os.path.join(directory, "config.json")) as f:
            self.config = json.load(f)
        self.weights = {}
        index = os.path.join(directory, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        else:
            shards = ["model.safetensors"]
        for shard in shards:
            self.weights.update(safetensors_io.read(os.path.join(directory, shard)))

    def w(self, name):
        return self.weights[name]

    def maybe(self, name):
        return self.weights.get(name)


def norm(model, x, prefix):
    c = model.config
    weight = model.w(prefix + ".weight")
    if c.get("norm", "rms") == "layer":
        centered = x - x.mean(axis=-1, keepdims=True)
        y = centered / np.sqrt((centered ** 2).mean(axis=-1, keepdims=True) + c["norm_eps"])
        bias = model.maybe(prefix + ".bias")
        return y * weight + (0.0 if bias is None else bias)
    return x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + c["norm_eps"]) * weight


def linear(model, x, prefix):
    y = x @ model.w(prefix + ".weight").T
    bias = model.maybe(prefix + ".bias")
    return y if bias is None else y + bias


def rope(x, positions, theta):
    """Rotate-half RoPE on [T, heads, d]."""
    d = x.shape[-1]
    half = d // 2
    inv_freq = theta ** (-2.0 * np.arange(half) / d)
    angle = positions[:, None] * inv_freq[None, :]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def power_attention(q, k, v, log_gate, degree, scale):
    """Quadratic form for one query head: q, k, v [T, d], log_gate [T]."""
    T = q.shape[0]
    cumulative = np.cumsum(log_gate)
    causal = np.tril(np.ones((T, T), dtype=bool))
    decay = np.where(causal, cumulative[:, None] - cumulative[None, :], -np.inf)
    weights = (scale * (q @ k.T)) ** degree * np.exp(decay)
    return (weights @ v) / (weights.sum(axis=1, keepdims=True) + EPSILON)


def forward(model, tokens):
    """Logits [T, vocab] in float64 for tokens at positions 0..T-1."""
    c = model.config
    T = len(tokens)
    H, KV, d = c["num_heads"], c.get("num_kv_heads", c["num_heads"]), c["head_dim"]
    group = H // KV
    scale = c.get("attention_scale") or 1.0 / np.sqrt(d)
    positions = np.arange(T, dtype=np.float64)
    h = model.w("model.embed_tokens.weight")[np.asarray(tokens)]
    for i in range(c["num_layers"]):
        p = f"model.layers.{i}."
        a = norm(model, h, p + "input_layernorm")
        q = linear(model, a, p + "self_attn.q_proj").reshape(T, H, d)
        k = linear(model, a, p + "self_attn.k_proj").reshape(T, KV, d)
        v = linear(model, a, p + "self_attn.v_proj").reshape(T, KV, d)
        if c.get("qk_norm"):
            q = q / np.sqrt((q ** 2).mean(-1, keepdims=True) + c["norm_eps"]) * model.w(p + "self_attn.q_norm.weight")
            k = k / np.sqrt((k ** 2).mean(-1, keepdims=True) + c["norm_eps"]) * model.w(p + "self_attn.k_norm.weight")
        if c.get("rope_theta", 0) > 0:
            q, k = rope(q, positions, c["rope_theta"]), rope(k, positions, c["rope_theta"])
        if c.get("gating"):
            log_gate = log_sigmoid(linear(model, a, p + "self_attn.g_proj") + c["gate_bias"])
        else:
            log_gate = np.zeros((T, KV))
        y = np.empty((T, H, d))
        for head in range(H):
            kv = head // group
            y[:, head] = power_attention(q[:, head], k[:, kv], v[:, kv], log_gate[:, kv], c["degree"], scale)
        h = h + linear(model, y.reshape(T, H * d), p + "self_attn.o_proj")
        m = norm(model, h, p + "post_attention_layernorm")
        if c.get("mlp", "swiglu") == "swiglu":
            gate = linear(model, m, p + "mlp.gate_proj")
            h = h + linear(model, gate / (1 + np.exp(-gate)) * linear(model, m, p + "mlp.up_proj"), p + "mlp.down_proj")
        else:
            u = linear(model, m, p + "mlp.c_fc")
            gelu = 0.5 * u * (1 + np.tanh(np.sqrt(2 / np.pi) * (u + 0.044715 * u ** 3)))
            h = h + linear(model, gelu, p + "mlp.c_proj")
    head = model.w("model.embed_tokens.weight") if c.get("tie_word_embeddings") else model.w("lm_head.weight")
    return norm(model, h, "model.norm") @ head.T
