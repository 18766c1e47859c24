"""Turns a sympow-loadgen report (serving.json, from `tests/gpu/run.sh serving`) into
bench/results/serving.{json,md,png}.

usage: serving_report.py SERVING_JSON RESULTS_DIR [--note TEXT]
"""
import argparse
import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def markdown(report, note):
    state_mb = report["state_bytes_per_session"] / 1e6
    lines = [f"# Serving on the GPU: sympow-loadgen against sympow-server (commit {report['commit'][:10]})", "",
             f"Model {os.path.basename(report['model'])} on the {report['backend']} backend: the random-weight "
             f"124M-class model (12 layers, 12 heads x 64, degree 2) with a bf16 state of {state_mb:.1f} MB per "
             "session at any length. Every user is a chat: a shared system prompt, turns of a user message and a "
             "streamed reply; one user in 64 first brings a 100k-token document. Regenerate with "
             "`tests/gpu/run.sh serving` on the GPU machine, then `bench/serving_report.py`.", ""]
    if note:
        lines += [note, ""]
    lines += ["| sessions | TTFT p50 / p99 ms | ITL p50 / p99 ms | tokens/s | GPU memory | state held | "
              "KV cache of a same-shape transformer | of decode bandwidth limit |",
              "|---|---|---|---|---|---|---|---|"]
    for level in report["levels"]:
        lines.append(
            f"| {level['sessions']} | {level['ttft_p50_ms']:,.0f} / {level['ttft_p99_ms']:,.0f} | "
            f"{level['itl_p50_ms']:.1f} / {level['itl_p99_ms']:.1f} | {level['tokens_per_s']:,.0f} | "
            f"{level['gpu_mem_bytes'] / 1e9:.1f} GB | {level['state_bytes_held'] / 1e9:.2f} GB | "
            f"{level['kv_cache_bytes_same_sessions'] / 1e9:.1f} GB | {100 * level['bw_fraction']:.1f}% |")
    lines += ["", "GPU memory is the server's whole allocation (weights, every state slot allocated at start, "
              "workspaces): it does not grow with sessions or their length. The KV cache column is what a "
              "softmax transformer of the same shape (12 layers, 12 kv heads x 64, bf16) would hold for the same "
              "sessions at their lengths. The bandwidth fraction is state bytes per token x tokens/s over the "
              "measured copy bandwidth.", "", "![latency and throughput by sessions](serving.png)", ""]
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
    args = parser.parse_args()
    with open(args.serving_json) as f:
        report = json.load(f)
    os.makedirs(args.results_dir, exist_ok=True)
    target = os.path.join(args.results_dir, "serving.json")
    if os.path.abspath(args.serving_json) != os.path.abspath(target):
        shutil.copyfile(args.serving_json, target)
    with open(os.path.join(args.results_dir, "serving.md"), "w") as f:
        f.write(markdown(report, args.note))
    plot(report, os.path.join(args.results_dir, "serving.png"))
    print(f"wrote serving.json, serving.md, serving.png in {args.results_dir}")


if __name__ == "__main__":
    main()
