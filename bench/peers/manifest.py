"""Manifest's published Triton kernels for power retention, timed on the same GPU in the same run.

usage: manifest.py RETENTION_SOURCE OUT.json

RETENTION_SOURCE is a checkout of github.com/m-a-n-i-f-e-s-t/retention, brought to the GPU
machine at run time (never committed here). Its package __init__ files import an optional CUDA
library (vidrial), so the Triton modules are loaded through stand-in package modules that only
set __path__.
- prefill: power_retention (degree 2, gated, chunk 1024) on one sequence of the 124M layer shape
  (12 heads x 64) at 4k-128k tokens (--head_dim_128 adds the 14B layer, 40 / 8 heads x 128, at
  16k: Triton autotunes it for minutes);
- decode: power_retention_inference with a bf16 state and its buffer of recent keys/values folded
  into the state every 64 tokens, 64 and 256 sessions, timed as called from Python and replayed
  as a CUDA graph: the step with a 1-token buffer, the query-only step, and the step that folds
  64 tokens; amortized over a fold = (63 x buffered step + folding step) / 64.
"""
import argparse
import faulthandler
import json
import traceback
import os
import sys
import types

import torch
import torch.nn.functional as F

from peers import median_ms  # bench/peers/peers.py, beside this script

HEADS, HEAD_DIM, FOLD = 12, 64, 64


def load_triton_retention(source):
    for package in ("retention", "retention._attention", "retention._update_state",
                    "retention._discumsum", "retention._query_state"):
        module = types.ModuleType(package)
        module.__path__ = [os.path.join(source, *package.split("."))]
        sys.modules[package] = module
    import retention.triton as retention_triton  # noqa: E402 (needs the stand-ins above)
    from retention._utils import compute_expanded_dim
    return retention_triton, compute_expanded_dim


def graph_ms(fn):
    """fn captured once as a CUDA graph, then replayed."""
    fn()  # autotuning and compilation happen outside the capture
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return median_ms(graph.replay, 20)


def prefill(rt, context, head_dim):
    # The 124M layer (12 heads x 64) or the 14B one (40 query heads over 8 kv heads x 128).
    heads, kv_heads = (HEADS, HEADS) if head_dim == HEAD_DIM else (40, 8)
    q = torch.randn(1, context, heads, head_dim, device="cuda", dtype=torch.bfloat16) / head_dim ** 0.5
    k, v = (torch.randn(1, context, kv_heads, head_dim, device="cuda", dtype=torch.bfloat16) / head_dim ** 0.5
            for _ in range(2))
    log_g = F.logsigmoid(torch.randn(1, context, kv_heads, device="cuda") + 6.0)
    ms = median_ms(lambda: rt.power_retention(q, k, v, log_g, deg=2, chunk_size=1024), 5)
    result = {"context": context, "head_dim": head_dim, "heads": heads, "kv_heads": kv_heads, "ms": ms,
              "tokens_per_s": context / (ms * 1e-3)}
    print("manifest prefill", result, flush=True)
    return result


def decode(rt, expanded_dim, sessions):
    D = expanded_dim(HEAD_DIM, 2)
    q = torch.randn(sessions, 1, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16) / 8
    state = torch.randn(sessions, HEADS, D, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    sum_of_keys = torch.randn(sessions, HEADS, D, device="cuda").abs()

    def step(buffered):
        if buffered == 0:
            return lambda: rt.power_retention_inference(q, None, None, None, state, sum_of_keys, deg=2,
                                                        switch_over_seq_len=FOLD)
        k, v = (torch.randn(sessions, buffered, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16) / 8
                for _ in range(2))
        log_g = F.logsigmoid(torch.randn(sessions, buffered, HEADS, device="cuda") + 6.0)
        return lambda: rt.power_retention_inference(q, k, v, log_g, state, sum_of_keys, deg=2,
                                                    switch_over_seq_len=FOLD)

    result = {"sessions": sessions, "layers": 1}
    for name, buffered in (("query_only", 0), ("buffer_1", 1), ("fold_64", FOLD)):
        print(f"manifest decode: {sessions} sessions, {name}", flush=True)
        fn = step(buffered)
        result[f"{name}_us_python"] = median_ms(fn, 20) * 1e3
        result[f"{name}_us_graph"] = graph_ms(fn) * 1e3
    for how in ("python", "graph"):
        result[f"us_per_step_{how}"] = ((FOLD - 1) * result[f"buffer_1_us_{how}"] + result[f"fold_64_us_{how}"]) / FOLD
    result["us_per_session_layer_graph"] = result["us_per_step_graph"] / sessions
    print("manifest decode", result, flush=True)
    return result


def write(report, path):
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--head_dim_128", action="store_true")
    args = parser.parse_args()
    faulthandler.enable()
    rt, expanded_dim = load_triton_retention(args.source)
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "prefill": [], "decode": [],
              "errors": []}
    for sessions in (64, 256):
        try:
            report["decode"].append(decode(rt, expanded_dim, sessions))
        except Exception:  # noqa: BLE001 (a peer that fails is reported, not fatal)
            report["errors"].append(traceback.format_exc())
            print(report["errors"][-1], flush=True)
    write(report, args.out)
    for context in (4096, 16384, 65536, 131072):
        report["prefill"].append(prefill(rt, context, HEAD_DIM))
        write(report, args.out)  # what is measured so far survives a timeout
    if args.head_dim_128:
        report["prefill"].append(prefill(rt, 16384, 128))
    write(report, args.out)


if __name__ == "__main__":
    main()
