"""Turns one GPU run of tests/gpu/run.sh (its $OUT folder) into bench/results/.

usage: report.py RUN_DIR RESULTS_DIR [--commit SHA] [--engine_run DIR --engine_commit SHA]
                 [--peers_from KERNELS_JSON] [--note TEXT]
Writes kernels.json (the issue's schema), kernels.md (tables with ratios to the ceilings and the
peers of the same run), kernels_prefill.png (tokens/s against context, sympow vs SDPA) and
gpu_correctness.md (every [figure] line the GPU tests printed).
"""
import argparse
import json
import os
import re
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LAYERS = {"124m": 12, "14b": 40}  # SDPA peers are one 12x64 layer; a step covers every layer


def nearest(entries, key, value):
    return min(entries, key=lambda e: abs(e[key] - value)) if entries else None


def sdpa_decode_us(peers, shape, sessions):
    """SDPA per step for the 124M shape at 4k/128k/1M, from its per-session-layer time."""
    if shape != "124m":
        return None
    out = {}
    for entry in peers["sdpa_decode"]:
        if entry["sessions"] != 1:
            continue
        label = {4096: "4k", 131072: "128k", 1048576: "1M"}[entry["context"]]
        out[label] = entry["us_per_session_layer"] * sessions * LAYERS[shape]
    return out


def manifest_decode_us(manifest, shape, sessions, how):
    """Manifest's decode per step (every layer), amortized over its 64-token folds."""
    entry = [m for m in manifest["decode"] if m["sessions"] == sessions] if manifest and shape == "124m" else []
    return entry[0][f"us_per_step_{how}"] * LAYERS[shape] if entry else None


def manifest_prefill(manifest, shape, context):
    head_dim = {"124m": 64, "14b": 128}[shape]
    entry = [m for m in manifest["prefill"] if m["context"] == context and m["head_dim"] == head_dim] if manifest else []
    return entry[0]["tokens_per_s"] if entry else None


def load_manifest(run_dir):
    path = os.path.join(run_dir, "manifest.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_peers(run_dir, peers_from):
    """The peers and Manifest's figures of this run, or those of an earlier report (peers_from);
    Manifest's of this run wherever it measured them. Returns the commits whose runs measured the
    peers and Manifest's figures (None: this run)."""
    manifest = load_manifest(run_dir)
    if peers_from is None:
        with open(os.path.join(run_dir, "peers.json")) as f:
            peers = json.load(f)
        return peers, manifest, None, None
    with open(peers_from) as f:
        earlier = json.load(f)
    # The commits whose runs measured them: that report's own when it borrowed them too.
    peers_commit = earlier.get("peers_commit", earlier["commit"])
    manifest_commit = None
    if manifest is None:
        manifest = earlier["manifest"] if isinstance(earlier["manifest"], dict) else None
        manifest_commit = earlier.get("manifest_commit", peers_commit)
    return earlier["peers"], manifest, peers_commit, manifest_commit


def wgmma_line(report):
    """The prefill passes' wgmma pattern alone, where the run measured it (bench/wgmma_ceiling.h)."""
    chains = report.get("wgmma_chain_TFLOPs")
    if not chains:
        return []
    return ["- the prefill passes' wgmma pattern alone (m64nNk16, A in registers, chains of four each "
            "waited for, four warpgroups an SM; no fragment making, no loads): "
            f"**{chains['head_dim_64']:.0f} TFLOP/s** at N = 72 (head_dim 64), "
            f"**{chains['head_dim_128']:.0f} TFLOP/s** at N = 136 (head_dim 128)"]


def build(run_dir, commit, engine_run=None, engine_commit=None, peers_from=None):
    with open(os.path.join(run_dir, "kernels_bench.json")) as f:
        bench = json.load(f)
    peers, manifest, peers_commit, manifest_commit = load_peers(run_dir, peers_from)
    report = {"gpu": bench["gpu"], "commit": commit, "copy_TBps": bench["copy_TBps"],
              "gemm_TFLOPs": bench["gemm_TFLOPs"], "wgmma_chain_TFLOPs": bench.get("wgmma_chain_TFLOPs"),
              "torch": peers["torch"], "decode": [],
              "prefill": [], "peers": peers, "peers_commit": peers_commit or commit,
              "manifest": manifest or "not measured in this run",
              "manifest_commit": manifest_commit or commit}
    for d in bench["decode"]:
        naive = nearest([n for n in peers["naive_decode"]], "sessions", d["sessions"])
        report["decode"].append({
            **d, "manifest_us_per_step": manifest_decode_us(manifest, d["shape"], d["sessions"], "graph"),
            "manifest_us_per_step_python": manifest_decode_us(manifest, d["shape"], d["sessions"], "python"),
            "sdpa_us_per_step": sdpa_decode_us(peers, d["shape"], d["sessions"]),
            "naive_torch_us_per_step": naive["us_per_step"] if naive and naive["sessions"] == d["sessions"]
            and d["shape"] == "124m" and d["state_dtype"] == "float32" else None})
    for p in bench["prefill"]:
        sdpa = [s for s in peers["sdpa_prefill"] if s["context"] == p["context"]] if p["shape"] == "124m" else []
        naive = [s for s in peers["naive_prefill"] if s["context"] == p["context"]] if p["shape"] == "124m" else []
        report["prefill"].append({
            **p, "manifest_tokens_per_s": manifest_prefill(manifest, p["shape"], p["context"]),
            "sdpa_tokens_per_s": sdpa[0]["tokens_per_s"] if sdpa else None,
            "naive_torch_tokens_per_s": naive[0]["tokens_per_s"] if naive else None})
    report["sampling"] = bench.get("sampling", [])
    report["projections"] = bench.get("projections", [])
    engine_path = os.path.join(engine_run or run_dir, "engine_bench.json")
    if os.path.exists(engine_path):
        with open(engine_path) as f:
            report["whole_model"] = json.load(f)["models"]
        report["whole_model_commit"] = engine_commit or commit
    return report


def manifest_line(report):
    if not isinstance(report["manifest"], dict):
        return "- Manifest's `retention` Triton kernels: not measured in this run"
    return ("- Manifest's `retention` Triton kernels (github.com/m-a-n-i-f-e-s-t/retention, brought to the GPU "
            "machine for the run): `power_retention` (chunk 1024) for prefill, `power_retention_inference` "
            "(bf16 state, buffer folded every 64 tokens) for decode, per step = (63 × one-token-buffer step + "
            "folding step) / 64, × layers, as a CUDA graph and as called from Python"
            + (f". Note: {report['manifest']['source']}" if report["manifest"].get("source") else ""))


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "—"


def markdown(report, figures):
    same_run = report["peers_commit"] == report["commit"]
    lines = [f"# CUDA kernels on {report['gpu']} (commit {report['commit'][:10]})", "",
             ("One run of `tests/gpu/run.sh device`: ceilings, sympow's kernels and the peers were all "
              "measured in it." if same_run else
              "One run of `tests/gpu/run.sh device`: the ceilings and sympow's kernels"
              + (" and Manifest's" if report.get("manifest_commit") == report["commit"] else "")
              + " were measured in it; the peers (SDPA, naive torch) are those of commit "
              + f"{report['peers_commit'][:10]}'s run"
              + ("" if report.get("manifest_commit") == report["commit"]
                 else f", Manifest's those of commit {report['manifest_commit'][:10]}'s report")
              + " on the same GPU model (their code did not change).") +
             " Regenerate with `tests/gpu/run.sh report DIR`." + (f" {report['note']}" if report.get("note") else ""), "",
             f"- device copy bandwidth (read + write): **{report['copy_TBps']:.2f} TB/s**",
             f"- cuBLAS BF16 GEMM 8192³: **{report['gemm_TFLOPs']:.0f} TFLOP/s**",
             *wgmma_line(report),
             f"- peers: torch {report['torch']} SDPA (FlashAttention backend) for a 12×64 softmax layer; "
             "a plain PyTorch power attention (quadratic form for prefill, expanded-state einsum for decode)",
             manifest_line(report), "",
             "## Decode: one token for every session, all layers (CUDA graph replay)", "",
             "Each session's state is read every step and written once every N = 64 steps, when its "
             "decode buffer folds (MODEL.md): µs/step is a step with its share of a fold, "
             "(N − 1 steps + a fold of every session) / N; the traffic counted for the bandwidth is the "
             "same (S and z read every step, read and written once a fold, the buffer read). "
             "µs/step without folds and what a fold adds (every session, every layer) are also shown: "
             "on the bf16 tensor-core path the step that fills the buffers folds them as it streams the "
             "state (the fold adds that step's time less a plain step's), on the others a separate fold "
             "follows the step.", "",
             "| shape | sessions | state | bytes/session | µs/step | without folds | a fold adds | eager µs | "
             "state TB/s | of copy BW | SDPA µs/step at 4k / 128k / 1M | sympow vs SDPA at 128k / 1M | "
             "naive torch µs | Manifest µs/step graph / Python | sympow vs Manifest graph |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in report["decode"]:
        sdpa = d["sdpa_us_per_step"]
        sdpa_text = " / ".join(f"{sdpa[k]:,.0f}" for k in ("4k", "128k", "1M")) if sdpa else "—"
        vs = f"{ratio(sdpa['128k'], d['us_per_step'])} / {ratio(sdpa['1M'], d['us_per_step'])}" if sdpa else "—"
        naive = f"{d['naive_torch_us_per_step']:,.0f}" if d["naive_torch_us_per_step"] else "—"
        manifest = (f"{d['manifest_us_per_step']:,.0f} / {d['manifest_us_per_step_python']:,.0f}"
                    if d["manifest_us_per_step"] else "—")
        lines.append(f"| {d['shape']} | {d['sessions']} | {d['state_dtype']} | {d['state_bytes_per_session'] / 1e6:.1f} MB | "
                     f"{d['us_per_step']:,.0f} | {d['us_per_step_without_fold']:,.0f} | "
                     f"{d['fold_us']:,.0f} | {d['us_per_step_eager']:,.0f} | {d['state_TBps']:.2f} | "
                     f"**{100 * d['bw_fraction']:.0f}%** | {sdpa_text} | {vs} | {naive} | {manifest} | "
                     f"{ratio(d['manifest_us_per_step'], d['us_per_step'])} |")
    lines += ["", "## Prefill: one layer, one sequence, from an empty state (passes of 64k tokens)", "",
              "| shape | context | ms | tokens/s | TFLOP/s | of BF16 GEMM | SDPA tokens/s | sympow / SDPA | "
              "naive torch tokens/s | Manifest tokens/s | sympow / Manifest |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in report["prefill"]:
        sdpa = p["sdpa_tokens_per_s"]
        naive = p["naive_torch_tokens_per_s"]
        lines.append(f"| {p['shape']} | {p['context']:,} | {p['ms']:.2f} | {p['tokens_per_s'] / 1e6:.2f} M | "
                     f"{p['TFLOPs']:.1f} | {100 * p['flops_fraction']:.1f}% | "
                     f"{f'{sdpa / 1e6:.2f} M' if sdpa else '—'} | {ratio(p['tokens_per_s'], sdpa)} | "
                     f"{f'{naive / 1e6:.2f} M' if naive else '—'} | "
                     f"{f'{manifest / 1e6:.2f} M' if (manifest := p['manifest_tokens_per_s']) else '—'} | "
                     f"{ratio(p['tokens_per_s'], manifest)} |")
    sdpa_prefill = ", ".join(f"{s['context']:,}: {s['tokens_per_s'] / 1e6:.2f} M"
                             for s in report["peers"]["sdpa_prefill"])
    lines += ["", f"SDPA prefill tokens/s at every context it ran (doubling; beyond 128k its quadratic "
              f"time was not spent): {sdpa_prefill}. SDPA decode against a KV cache, per session and "
              "layer (batch 1; SDPA µs/step above = that × sessions × layers, fair where the KV read is "
              "bandwidth-bound, 128k and up, generous to sympow at 4k where SDPA batches well: 64 "
              "sessions at 4k took " + ", ".join(f"{e['us_per_session_layer']:.1f} µs"
                                                  for e in report["peers"]["sdpa_decode"] if e["sessions"] > 1) +
              " per session-layer): " +
              ", ".join(f"{e['context']:,} tokens {e['us_per_session_layer']:.1f} µs"
                        for e in report["peers"]["sdpa_decode"] if e["sessions"] == 1) + ".", "",
              "![prefill tokens/s vs context](kernels_prefill.png)", ""]
    if report["sampling"]:
        lines += ["## Token sampling (SampleRows): one call for every row", "",
                  "Normal random logits; the ceiling is reading the logits once at the copy bandwidth.", "",
                  "| rows | vocabulary | sampling | µs a call | logits read at copy BW, µs | of the call |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {x['rows']} | {x['vocab']:,} | {x['mode']} | {x['us']:,.1f} | "
                  f"{x['logits_read_us']:.2f} | {100 * x['logits_read_us'] / x['us']:.1f}% |"
                  for x in report["sampling"]]
        lines.append("")
    if report["projections"]:
        variants = list(report["projections"][0]["us"])
        lines += ["## Projections reading one input: separate GEMMs or their weights stacked", "",
                  "cuBLAS, BF16 in, fp32 out, as the CUDA backend's Linear; µs a call.", "",
                  "| model | projections | rows | " + " | ".join(variants) + " |",
                  "|---|---|---|" + "---|" * len(variants)]
        lines += [f"| {x['model']} | {x['group']} | {x['rows']:,} | " +
                  " | ".join(f"{x['us'][v]:,.1f}" for v in variants) + " |"
                  for x in report["projections"]]
        lines.append("")
    for model in report.get("whole_model", []):
        lines += [f"## Whole model through the Engine: {model['model']} (commit {report['whole_model_commit'][:10]})", "",
                  f"State {model['state_bytes_per_session'] / 1e6:.1f} MB per session; GPU memory for "
                  f"weights + 256 state slots + workspaces at peak: {model['gpu_bytes_peak'] / 1e9:.2f} GB "
                  f"({model['gpu_bytes_per_session'] / 1e6:.1f} MB per session slot). Decode as the server "
                  "runs it: tokens sampled on the GPU (temperature 0.8, top-p 0.95), only their ids "
                  "returned; for comparison, the same step returning every row's logits to the host.", "",
                  "| prefill tokens | tokens/s |", "|---|---|"]
        lines += [f"| {p['tokens']:,} | {p['tokens_per_s']:,.0f} |" for p in model["prefill"]]
        lines += ["", "| decode sessions | tokens/s | µs/step (CUDA graphs) | µs/step without CUDA graphs | "
                  "µs/step with logits to the host |", "|---|---|---|---|---|"]
        for d in model["decode"]:
            without = d.get("us_per_step_without_graphs")
            without_text = f"{without:,.0f}" if without is not None else "(not measured)"
            lines.append(f"| {d['sessions']} | {d['tokens_per_s']:,.0f} | {d['us_per_step']:,.0f} | "
                         f"{without_text} | {d.get('us_per_step_host_logits', 0):,.0f} |")
        lines.append("")
    return "\n".join(lines)


def plot(report, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ours = [p for p in report["prefill"] if p["shape"] == "124m"]
    ax.plot([p["context"] for p in ours], [p["tokens_per_s"] for p in ours], "o-", label="sympow power attention")
    sdpa = report["peers"]["sdpa_prefill"]
    ax.plot([s["context"] for s in sdpa], [s["tokens_per_s"] for s in sdpa], "s-", label="SDPA (FlashAttention)")
    naive = report["peers"]["naive_prefill"]
    ax.plot([s["context"] for s in naive], [s["tokens_per_s"] for s in naive], "^-", label="naive PyTorch power attention")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("prefill tokens/s, one 12x64 layer")
    ax.set_title(report["gpu"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("results_dir")
    parser.add_argument("--commit", default=None, help="the commit RUN_DIR measured (default HEAD)")
    parser.add_argument("--engine_run", default=None, help="take engine_bench.json from this run")
    parser.add_argument("--engine_commit", default=None, help="the commit --engine_run measured")
    parser.add_argument("--peers_from", default=None,
                        help="take the peers from this earlier kernels.json when RUN_DIR has none")
    parser.add_argument("--note", default=None,
                        help="how this run differs from one plain `tests/gpu/run.sh device`, for kernels.md")
    args = parser.parse_args()
    commit = args.commit or subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
    report = build(args.run_dir, commit, args.engine_run, args.engine_commit, args.peers_from)
    if args.note:
        report["note"] = args.note
    with open(os.path.join(args.run_dir, "gpu_tests.log")) as f:
        log = f.read()
    figures = re.findall(r"\[figure\] (.*)", log)
    summary = re.findall(r"\[  (PASSED|FAILED|SKIPPED) +\] (\d+) tests?", log)
    os.makedirs(args.results_dir, exist_ok=True)
    with open(os.path.join(args.results_dir, "kernels.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.results_dir, "kernels.md"), "w") as f:
        f.write(markdown(report, figures))
    plot(report, os.path.join(args.results_dir, "kernels_prefill.png"))
    with open(os.path.join(args.results_dir, "gpu_correctness.md"), "w") as f:
        f.write(f"# GPU correctness on {report['gpu']} (commit {commit[:10]})\n\n")
        f.write("`tests/gpu/cuda_backend_test` (built with the CUDA backend, run by `tests/gpu/run.sh device`): "
                + ", ".join(f"{n} {s.lower()}" for s, n in summary) + ".\n")
        f.write("Errors are max |a − b| / max |b| over everything compared. Tolerances: logits vs the "
                "float64 oracle 3e-2 (BF16 weights and GEMM inputs); attention vs the CPU backend 1.5e-2 "
                "for the BF16 tensor-core prefill (degree 2, head_dim 64 and 128), 1e-2 for the TF32 one "
                "(other shapes) and fp32 decode, 1.5e-2 with bf16 state storage; decode from the very same "
                "states as the CPU backend 1e-4.\n\n")
        f.write("\n".join(f"- {line}" for line in figures) + "\n")
    print(f"wrote kernels.json, kernels.md, kernels_prefill.png, gpu_correctness.md in {args.results_dir}")


if __name__ == "__main__":
    main()
