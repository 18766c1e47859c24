"""A sympow model in PyTorch (MODEL.md), with the chunked power-attention form used for training.

Parameter names are the checkpoint's tensor names (Hugging Face Llama/Qwen layout), so
`state_dict()` exports directly. Supported here: RMSNorm, SwiGLU, no biases (the bundled model's
options); other MODEL.md options raise NotImplementedError.
"""
import itertools
import math

import torch
from torch import nn
import torch.nn.functional as F

EPSILON = 1e-6


class RMSNorm(nn.Module):
    def __init__(self, width, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class SymmetricPower(nn.Module):
    """φ with φ(q)·φ(k) = (q·k)^p over sorted multisets; multinomial weights on the key side."""

    def __init__(self, head_dim, degree):
        super().__init__()
        monomials = list(itertools.combinations_with_replacement(range(head_dim), degree))
        index = torch.tensor(monomials, dtype=torch.long)  # [D, p]
        weight = torch.tensor([math.factorial(degree) / math.prod(
            math.factorial(m.count(i)) for i in set(m)) for m in monomials])
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("key_weight", weight, persistent=False)

    def forward(self, x, key_side):
        features = x[..., self.index[:, 0]]
        for k in range(1, self.index.shape[1]):
            features = features * x[..., self.index[:, k]]
        return features * self.key_weight.to(features.dtype) if key_side else features


def power_attention_chunked(q, k, v, log_gate, phi, degree, scale, chunk):
    """q [B, H, T, d]; k, v [B, KV, T, d]; log_gate [B, KV, T]. Returns [B, H, T, d], fp32 or wider.

    Attention form inside each chunk with intra-chunk cumulative gates; state form across chunks.
    """
    B, H, T, d = q.shape
    KV = k.shape[1]
    G = H // KV
    pad = (-T) % chunk
    if pad:  # zero keys add nothing to any state; the padded outputs are dropped
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        log_gate = F.pad(log_gate, (0, pad))
    n = (T + pad) // chunk
    dtype = torch.promote_types(q.dtype, torch.float32)  # fp32 at least, fp64 for checks
    q = q.to(dtype).view(B, KV, G, n, chunk, d)
    k = k.to(dtype).view(B, KV, 1, n, chunk, d)
    v = v.to(dtype).view(B, KV, 1, n, chunk, d)
    cumulative = log_gate.to(dtype).view(B, KV, 1, n, chunk).cumsum(-1)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    decay = (cumulative[..., :, None] - cumulative[..., None, :]).masked_fill(~causal, -math.inf)
    weights = (scale * q @ k.transpose(-1, -2)).pow(degree) * decay.exp()
    numerator = weights @ v
    denominator = weights.sum(-1)

    if n > 1:
        # State form: chunks 0..n−2 hand their keys, decayed to their end, to the chunks after.
        key_features = phi(k[:, :, :, :-1], key_side=True)  # [B, KV, 1, n−1, c, D]
        to_end = (cumulative[..., :-1, -1:] - cumulative[..., :-1, :]).exp()[..., None]
        chunk_S = (key_features * to_end).transpose(-1, -2) @ v[:, :, :, :-1]  # [B, KV, 1, n−1, D, d]
        chunk_z = (key_features * to_end).sum(-2)  # [B, KV, 1, n−1, D]
        chunk_decay = cumulative[..., -1].exp()  # [B, KV, 1, n]
        S, z = chunk_S[:, :, :, 0], chunk_z[:, :, :, 0]
        S_before, z_before = [S], [z]
        for j in range(1, n - 1):
            S = chunk_decay[..., j, None, None] * S + chunk_S[:, :, :, j]
            z = chunk_decay[..., j, None] * z + chunk_z[:, :, :, j]
            S_before.append(S)
            z_before.append(z)
        S_before = torch.stack(S_before, dim=3)  # state before chunks 1..n−1
        z_before = torch.stack(z_before, dim=3)
        query_features = phi(q[:, :, :, 1:], key_side=False)  # [B, KV, G, n−1, c, D]
        carried = scale ** degree * cumulative[..., 1:, :].exp()  # [B, KV, 1, n−1, c]
        numerator = torch.cat([numerator[:, :, :, :1], numerator[:, :, :, 1:] + carried[..., None] * (
            query_features @ S_before)], dim=3)
        denominator = torch.cat([denominator[:, :, :, :1], denominator[:, :, :, 1:] + carried * (
            query_features @ z_before[..., None]).squeeze(-1)], dim=3)
    y = numerator / (denominator[..., None] + EPSILON)
    return y.view(B, H, n * chunk, d)[:, :, :T]


def rope(x, positions, theta):
    """Rotate-half RoPE on [B, heads, T, d] at integer positions [T]."""
    d = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, d // 2, device=x.device, dtype=torch.float64) * 2 / d)
    angle = positions.double()[:, None] * inv_freq[None, :]
    dtype = torch.promote_types(x.dtype, torch.float32)
    cos, sin = angle.cos().to(dtype), angle.sin().to(dtype)
    first, second = x[..., : d // 2].to(dtype), x[..., d // 2:].to(dtype)
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1).type_as(x)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        H, KV, d, hidden = c["num_heads"], c["num_kv_heads"], c["head_dim"], c["hidden_size"]
        self.q_proj = nn.Linear(hidden, H * d, bias=False)
        self.k_proj = nn.Linear(hidden, KV * d, bias=False)
        self.v_proj = nn.Linear(hidden, KV * d, bias=False)
        if c["gating"]:
            self.g_proj = nn.Linear(hidden, KV, bias=True)
        if c["qk_norm"]:
            self.q_norm = RMSNorm(d, c["norm_eps"])
            self.k_norm = RMSNorm(d, c["norm_eps"])
        self.o_proj = nn.Linear(H * d, hidden, bias=False)
        self.phi = SymmetricPower(d, c["degree"])

    def forward(self, x, positions):
        c = self.c
        B, T, _ = x.shape
        H, KV, d = c["num_heads"], c["num_kv_heads"], c["head_dim"]
        q = self.q_proj(x).view(B, T, H, d).transpose(1, 2)
        k = self.k_proj(x).view(B, T, KV, d).transpose(1, 2)
        v = self.v_proj(x).view(B, T, KV, d).transpose(1, 2)
        if c["qk_norm"]:
            q, k = self.q_norm(q), self.k_norm(k)
        if c["rope_theta"] > 0:
            q, k = rope(q, positions, c["rope_theta"]), rope(k, positions, c["rope_theta"])
        if c["gating"]:
            gate_logits = self.g_proj(x)
            log_gate = F.logsigmoid(gate_logits.to(torch.promote_types(gate_logits.dtype, torch.float32))
                                    + c["gate_bias"]).transpose(1, 2)
        else:
            log_gate = torch.zeros(B, KV, T, device=x.device)
        scale = c["attention_scale"] or 1.0 / math.sqrt(d)
        y = power_attention_chunked(q, k, v, log_gate, self.phi, c["degree"], scale, c["chunk_size"])
        return self.o_proj(y.type_as(x).transpose(1, 2).reshape(B, T, H * d))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["norm_eps"])
        self.mlp = MLP(c)

    def forward(self, h, positions):
        h = h + self.self_attn(self.input_layernorm(h), positions)
        return h + self.mlp(self.post_attention_layernorm(h))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["num_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["norm_eps"])


class SympowModel(nn.Module):
    def __init__(self, config, chunk_size=None):
        """chunk_size overrides config["chunk_size"] for this module's attention (same results)."""
        super().__init__()
        unsupported = {k: config.get(k) for k, ok in (("norm", "rms"), ("mlp", "swiglu"), ("bias", False))
                       if config.get(k, ok) != ok}
        if unsupported:
            raise NotImplementedError(f"the trainer supports rms/swiglu/no-bias only, got {unsupported}")
        self.config = config
        self.model = Decoder(dict(config, chunk_size=chunk_size or config["chunk_size"]))
        if not config["tie_word_embeddings"]:
            self.lm_head = nn.Linear(config["hidden_size"], config["vocab_size"], bias=False)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.model.embed_tokens(tokens)
        for block in self.model.layers:
            h = block(h, positions)
        h = self.model.norm(h)
        head = self.model.embed_tokens.weight if self.config["tie_word_embeddings"] else self.lm_head.weight
        return h @ head.T

    def init_weights(self, seed):
        generator = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith("g_proj.bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * self.config["num_layers"]) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
