"""Turns a sympow-loadgen report (serving.json, from `tests/gpu/run.sh serving`) into
bench/results/serving.{json,md,png}.

usage: serving_report.py SERVING_JSON RESULTS_DIR [--note TEXT] [--peers PEERS_JSON]

--peers: bench/peers/peers.py's JSON from the same GPU call; its SDPA decode timings give what a
decode step of a softmax transformer of the same shape would take over the same sessions.
"""
import argparse
import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


LAYERS = 12
KV_BYTES_PER_TOKEN = LAYERS * 2 * 12 * 64 * 2  # K and V, 12 kv heads x 64, bf16, every layer


def sdpa_step_ms(peers, level):
    """A decode step of a same-shape softmax transformer over this level's sessions, from SDPA's
    measured decode: per session-layer, the batched 4k cost less its KV read, plus the per-token
    cost of reading the cache (the slope between 4k and 128k at batch 1), at these sessions'
    lengths (their KV bytes / bytes per token)."""
    single = {e["context"]: e["us_per_session_layer"] for e in peers["sdpa_decode"] if e["sessions"] == 1}
    batched = [e for e in peers["sdpa_decode"] if e["sessions"] > 1][0]
    per_token_us = (single[131072] - single[4096]) / (131072 - 4096)
    fixed_us = batched["us_per_session_layer"] - per_token_us * batched["context"]
    tokens = level["kv_cache_bytes_same_sessions"] / KV_BYTES_PER_TOKEN
    return LAYERS * (level["sessions"] * fixed_us + per_token_us * tokens) / 1e3


def markdown(report, note, peers):
    state_mb = report["state_bytes_per_session"] / 1e6
    lines = [f"# Serving on the GPU: sympow-loadgen against sympow-server (commit {report['commit'][:10]})", "",
             f"Model {os.path.basename(report['model'])} on the {report['backend']} backend: the random-weight "
             f"124M-class model (12 layers, 12 heads x 64, degree 2) with a bf16 state of {state_mb:.1f} MB per "
             "session at any length. Every user is a chat: a shared system prompt, turns of a user message and a "
             "streamed reply; one user in 64 first brings a 100k-token document. Regenerate with "
             "`tests/gpu/run.sh serving` on the GPU machine, then `bench/serving_report.py SERVING_JSON "
             "bench/results --peers PEERS_JSON` (peers.json of `tests/gpu/run.sh device peers` in the same "
             "call).", ""]
    if note:
        lines += [note, ""]
    lines += ["| sessions | TTFT p50 / p99 ms | ITL p50 / p99 ms | tokens/s | GPU memory | state held | "
              "KV cache of a same-shape transformer | its SDPA attention per decode step, ms | of decode bandwidth limit |",
              "|---|---|---|---|---|---|---|---|---|"]
    for level in report["levels"]:
        sdpa = f"{sdpa_step_ms(peers, level):,.1f}" if peers else "—"
        lines.append(
            f"| {level['sessions']} | {level['ttft_p50_ms']:,.0f} / {level['ttft_p99_ms']:,.0f} | "
            f"{level['itl_p50_ms']:.1f} / {level['itl_p99_ms']:.1f} | {level['tokens_per_s']:,.0f} | "
            f"{level['gpu_mem_bytes'] / 1e9:.1f} GB | {level['state_bytes_held'] / 1e9:.2f} GB | "
            f"{level['kv_cache_bytes_same_sessions'] / 1e9:.1f} GB | {sdpa} | {100 * level['bw_fraction']:.1f}% |")
    lines += ["", "GPU memory is the server's whole allocation (weights, every state slot allocated at start, "
              "workspaces): it does not grow with sessions or their length. The KV cache column is what a "
              "softmax transformer of the same shape (12 layers, 12 kv heads x 64, bf16) would hold for the same "
              "sessions at their lengths, and its SDPA attention what one decode step's attention over those caches "
              "takes (attention alone: projections and MLP come on top, as in sympow's step), from torch SDPA's "
              "decode timings measured on the same GPU. The "
              "bandwidth fraction is state bytes per token x tokens/s over the measured copy bandwidth.", "", "![latency and throughput by sessions](serving.png)", ""]
    return "\n".join(lines)


def plot(report, path):
    levels = report["levels"]
    sessions = [level["sessions"] for level in levels]
    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("itl_p50_ms", "ITL p50"), ("itl_p99_ms", "ITL p99")):
        latency.plot(sessions, [level[key] for level in levels], "o-", label=label)
    latency.axhline(50, color="grey", linestyle="--", label="50 ms")
    latency.set_xscale("log", base=2)
    latency.set_xlabel("concurrent sessions")
    latency.set_ylabel("inter-token latency (ms)")
    latency.legend()
    throughput.plot(sessions, [level["tokens_per_s"] for level in levels], "s-")
    throughput.set_xscale("log", base=2)
    throughput.set_xlabel("concurrent sessions")
    throughput.set_ylabel("generated tokens/s")
    for axis in (latency, throughput):
        axis.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("serving_json")
    parser.add_argument("results_dir")
    parser.add_argument("--note", default="")
    parser.add_argument("--peers", default=None, help="peers.json of the same GPU call (SDPA decode timings)")
    args = parser.parse_args()
    with open(args.serving_json) as f:
        report = json.load(f)
    peers = None
    if args.peers:
        with open(args.peers) as f:
            peers = json.load(f)
    os.makedirs(args.results_dir, exist_ok=True)
    target = os.path.join(args.results_dir, "serving.json")
    if os.path.abspath(args.serving_json) != os.path.abspath(target):
        shutil.copyfile(args.serving_json, target)
    with open(os.path.join(args.results_dir, "serving.md"), "w") as f:
        f.write(markdown(report, args.note, peers))
    plot(report, os.path.join(args.results_dir, "serving.png"))
    print(f"wrote serving.json, serving.md, serving.png in {args.results_dir}")


if __name__ == "__main__":
    main()
