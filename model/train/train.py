"""Trains a sympow model on token files made by tokenizer.py, then exports it.

usage: train.py --data DIR --out DIR [--steps N ...]
DIR holds train.bin and heldout.bin (uint16 token ids) and tokenizer.json. The run prints progress
(step, loss, tokens/s, ETA), evaluates on held-out windows periodically, keeps a resumable
checkpoint in OUT/checkpoint.pt, and ends with OUT/model.safetensors (BF16), config.json,
tokenizer.json and train_log.json.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import export
from model import SympowModel

TINY_CONFIG = {
    "architecture": "sympow", "vocab_size": 8192, "hidden_size": 256, "num_layers": 4, "num_heads": 4,
    "num_kv_heads": 4, "head_dim": 64, "intermediate_size": 768, "degree": 2, "chunk_size": 128,
    "gating": True, "gate_bias": 6.906768, "qk_norm": True, "attention_scale": None, "norm": "rms",
    "mlp": "swiglu", "bias": False, "norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
    "bos_token_id": 8191, "eos_token_id": 8191, "state_dtype": "float32",
}


def batches(tokens, batch_size, context, generator):
    """Random windows of context+1 tokens: inputs and next-token targets."""
    starts = torch.randint(0, len(tokens) - context - 1, (batch_size,), generator=generator)
    windows = torch.stack([torch.from_numpy(tokens[s:s + context + 1].astype(np.int64)) for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def evaluate(model, tokens, batch_size, context, device, windows):
    """Mean next-token loss over `windows` fixed, evenly spaced held-out windows."""
    model.eval()
    starts = np.linspace(0, len(tokens) - context - 1, windows).astype(np.int64)
    losses = []
    for i in range(0, windows, batch_size):
        chunk = [torch.from_numpy(tokens[s:s + context + 1].astype(np.int64)) for s in starts[i:i + batch_size]]
        window = torch.stack(chunk).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(window[:, :-1])
        losses.append(F.cross_entropy(logits.float().flatten(0, 1), window[:, 1:].flatten()).item())
    model.train()
    return float(np.mean(losses))


def learning_rate(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--weight_decay", type=float, default=0.1)
    parser.add_argument("--eval_every", type=int, default=200)
    parser.add_argument("--eval_windows", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--config", help="config.json to train instead of the bundled tiny shape")
    parser.add_argument("--train_chunk", type=int, default=0,
                        help="power-attention chunk while training (0: the config's); results do not "
                             "depend on it, speed does (a whole-context chunk suits CPUs)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    config = TINY_CONFIG
    if args.config:
        with open(args.config) as f:
            config = json.load(f)
    train_tokens = np.fromfile(os.path.join(args.data, "train.bin"), dtype=np.uint16)
    heldout_tokens = np.fromfile(os.path.join(args.data, "heldout.bin"), dtype=np.uint16)
    os.makedirs(args.out, exist_ok=True)

    model = SympowModel(config, chunk_size=args.train_chunk or None).to(device)
    model.init_weights(args.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    log = {"config": config, "args": vars(args), "train_tokens": int(len(train_tokens)),
           "heldout_tokens": int(len(heldout_tokens)), "evals": [], "device": str(device),
           "parameters": sum(p.numel() for p in model.parameters())}
    start_step = 0
    checkpoint_path = os.path.join(args.out, "checkpoint.pt")
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, log = state["step"], state["log"]
        print(f"resumed at step {start_step}", flush=True)
    generator = torch.Generator().manual_seed(args.seed + start_step)
    print(f"{log['parameters']:,} parameters on {device}; {len(train_tokens):,} training tokens", flush=True)

    started = time.time()
    tokens_per_step = args.batch_size * args.context
    for step in range(start_step, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        inputs, targets = (t.to(device) for t in batches(train_tokens, args.batch_size, args.context, generator))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        done = step + 1 - start_step
        if done % 10 == 0 or step + 1 == args.steps:
            elapsed = time.time() - started
            rate = done * tokens_per_step / elapsed
            eta = (args.steps - step - 1) * tokens_per_step / rate
            print(f"step {step + 1}/{args.steps} loss {loss.item():.4f} lr {learning_rate(step, args):.2e} "
                  f"{rate:,.0f} tokens/s ETA {eta:.0f} s", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            heldout = evaluate(model, heldout_tokens, args.batch_size, args.context, device, args.eval_windows)
            log["evals"].append({"step": step + 1, "train_loss": loss.item(), "heldout_loss": heldout,
                                 "tokens_seen": (step + 1) * tokens_per_step})
            print(f"eval step {step + 1}: held-out loss {heldout:.4f} (perplexity {math.exp(heldout):.1f})",
                  flush=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                        "log": log}, checkpoint_path)
    log["train_seconds"] = time.time() - started
    log["tokens_seen"] = args.steps * tokens_per_step
    export.write_model_dir(model, config, args.out)
    shutil.copy(os.path.join(args.data, "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=2)
    print(f"exported to {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
