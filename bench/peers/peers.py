"""Peers for cuda_kernels_bench, timed on the same GPU in the same run (torch, CUDA).

usage: peers.py OUT.json [--max_sdpa_prefill N]
- softmax attention of the same layer shape (12 heads x 64, BF16) through
  torch.nn.functional.scaled_dot_product_attention (FlashAttention backend): causal prefill at
  1k-128k tokens, and one-token decode against a KV cache of 4k, 128k and 1M tokens;
- a straightforward PyTorch power attention (degree 2, gated): the quadratic form for prefill
  (scores^2 with a causal decay mask, as one would write it first) and the expanded-state
  recurrence for decode (phi(k) by an outer product, state update by einsum).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

HEADS, HEAD_DIM = 12, 64


def median_ms(fn, repeats=10):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def sdpa_prefill(context):
    q, k, v = (torch.randn(1, HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 5 if context > 32768 else 10)
    return {"context": context, "ms": ms, "tokens_per_s": context / (ms * 1e-3)}


def sdpa_decode(context, sessions=1):
    q = torch.randn(sessions, HEADS, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(sessions, HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v), 20)
    return {"context": context, "sessions": sessions, "us_per_step": ms * 1e3,
            "us_per_session_layer": ms * 1e3 / sessions}


def naive_power_prefill(context):
    """The quadratic form: (s q.k)^2 * exp(G_t - G_s), causal, normalised; fp32."""
    q, k, v = (torch.randn(1, HEADS, context, HEAD_DIM, device="cuda") for _ in range(3))
    log_gate = torch.full((1, HEADS, context), -1e-3, device="cuda")

    def run():
        cumulative = log_gate.cumsum(-1)
        scores = (q @ k.transpose(-1, -2) / HEAD_DIM ** 0.5) ** 2
        decay = torch.exp(cumulative[..., :, None] - cumulative[..., None, :])
        weights = torch.tril(scores * decay)
        return (weights @ v) / (weights.sum(-1, keepdim=True) + 1e-6)
    ms = median_ms(run, 5)
    return {"context": context, "ms": ms, "tokens_per_s": context / (ms * 1e-3)}


def naive_power_decode(sessions, layers=12):
    """One token per session from the expanded state S (D x d) and z: fp32, plain torch ops."""
    D = HEAD_DIM * HEAD_DIM  # the full (non-symmetric) tensor power, as a first version would
    S = [torch.zeros(sessions, HEADS, D, HEAD_DIM, device="cuda") for _ in range(layers)]
    z = [torch.zeros(sessions, HEADS, D, device="cuda") for _ in range(layers)]
    q, k, v = (torch.randn(sessions, HEADS, HEAD_DIM, device="cuda") for _ in range(3))
    gate = torch.full((sessions, HEADS, 1), 0.999, device="cuda")

    def step():
        phi_q = (q[..., :, None] * q[..., None, :]).flatten(-2) / HEAD_DIM
        phi_k = (k[..., :, None] * k[..., None, :]).flatten(-2)
        for layer in range(layers):
            S[layer].mul_(gate[..., None]).add_(phi_k[..., :, None] * v[..., None, :])
            z[layer].mul_(gate).add_(phi_k)
            num = torch.einsum("shD,shDd->shd", phi_q, S[layer])
            den = torch.einsum("shD,shD->sh", phi_q, z[layer])
            _ = num / (den[..., None] + 1e-6)
    ms = median_ms(step, 10)
    return {"sessions": sessions, "us_per_step": ms * 1e3}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--max_sdpa_prefill", type=int, default=131072)
    args = parser.parse_args()
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
              "sdpa_prefill": [], "sdpa_decode": [], "naive_prefill": [], "naive_decode": []}
    context = 1024
    while context <= args.max_sdpa_prefill:
        report["sdpa_prefill"].append(sdpa_prefill(context))
        print("sdpa prefill", report["sdpa_prefill"][-1], flush=True)
        context *= 2
    for context in (4096, 131072, 1 << 20):
        report["sdpa_decode"].append(sdpa_decode(context))
        print("sdpa decode", report["sdpa_decode"][-1], flush=True)
    report["sdpa_decode"].append(sdpa_decode(4096, 64))
    for context in (1024, 4096, 8192):
        report["naive_prefill"].append(naive_power_prefill(context))
        print("naive prefill", report["naive_prefill"][-1], flush=True)
    for sessions in (1, 16, 64):
        report["naive_decode"].append(naive_power_decode(sessions))
        print("naive decode", report["naive_decode"][-1], flush=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
