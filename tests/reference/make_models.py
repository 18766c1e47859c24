"""Writes random small sympow models (real config.json + safetensors) and the oracle's logits.

usage: make_models.py OUTDIR   ->  OUTDIR/<name>/ per model and OUTDIR/cases.json
"""
import json
import os
import sys

import numpy as np

import oracle
import _paths  # noqa: F401  (makes model/train importable)
import safetensors_io

# Each model exercises a different corner of MODEL.md; chunks are small so the oracle's sequence
# (5·chunk + 3 prompt tokens and DECODE_STEPS more) spans several chunk boundaries, and decode
# buffers small so that decode folds them (every token, every 2 or 3) and decodes on past folds.
MODELS = {
    "d32_p2_gqa_gate_qknorm_tied": dict(head_dim=32, degree=2, num_heads=4, num_kv_heads=2, gating=True,
                                        qk_norm=True, tie_word_embeddings=True, chunk_size=8, decode_buffer_tokens=3),
    "d64_p2_nogate_untied_norope": dict(head_dim=64, degree=2, num_heads=2, num_kv_heads=2, gating=False,
                                        qk_norm=False, tie_word_embeddings=False, chunk_size=16,
                                        rope_theta=0.0, hidden_size=96, decode_buffer_tokens=1),
    "d32_p4_gate_qknorm_untied": dict(head_dim=32, degree=4, num_heads=2, num_kv_heads=1, gating=True,
                                      qk_norm=True, tie_word_embeddings=False, chunk_size=8,
                                      decode_buffer_tokens=2),
    "d32_p4_nogate_scale_tied": dict(head_dim=32, degree=4, num_heads=2, num_kv_heads=2, gating=False,
                                     qk_norm=False, tie_word_embeddings=True, chunk_size=8,
                                     attention_scale=0.15),
    "d64_p2_gate_bf16_weights": dict(head_dim=64, degree=2, num_heads=2, num_kv_heads=1, gating=True,
                                     qk_norm=True, tie_word_embeddings=False, chunk_size=16, dtype="BF16",
                                     decode_buffer_tokens=3),
    "d32_p2_layernorm_gelu_bias_f16_sharded": dict(head_dim=32, degree=2, num_heads=2, num_kv_heads=2,
                                                   gating=True, qk_norm=False, tie_word_embeddings=False,
                                                   chunk_size=8, norm="layer", mlp="gelu_tanh", bias=True,
                                                   dtype="F16", shards=2),
    "d32_p2_gate_bf16_state": dict(head_dim=32, degree=2, num_heads=2, num_kv_heads=2, gating=True,
                                   qk_norm=True, tie_word_embeddings=True, chunk_size=8,
                                   state_dtype="bfloat16", decode_buffer_tokens=3),
}
DECODE_STEPS = 7


def make_config(spec):
    config = {
        "architecture": "sympow", "vocab_size": 97, "hidden_size": 64, "num_layers": 2,
        "num_heads": spec["num_heads"], "num_kv_heads": spec["num_kv_heads"], "head_dim": spec["head_dim"],
        "intermediate_size": 96, "degree": spec["degree"], "chunk_size": spec["chunk_size"],
        "gating": spec["gating"], "gate_bias": 2.0, "qk_norm": spec["qk_norm"],
        "attention_scale": spec.get("attention_scale"), "norm": spec.get("norm", "rms"),
        "mlp": spec.get("mlp", "swiglu"), "bias": spec.get("bias", False), "norm_eps": 1e-5,
        "rope_theta": spec.get("rope_theta", 10000.0), "tie_word_embeddings": spec["tie_word_embeddings"],
        "bos_token_id": 0, "eos_token_id": 1, "state_dtype": spec.get("state_dtype", "float32"),
        "decode_buffer_tokens": spec.get("decode_buffer_tokens", 64),
    }
    if "hidden_size" in spec:
        config["hidden_size"] = spec["hidden_size"]
    return config


def random_weights(c, rng):
    """Tensor name -> float32 array, named and shaped as MODEL.md lists them."""
    hidden, d, inter = c["hidden_size"], c["head_dim"], c["intermediate_size"]
    H, KV = c["num_heads"], c["num_kv_heads"]

    def matrix(rows, cols):
        return rng.normal(0.0, 1.0 / np.sqrt(cols), (rows, cols))

    def norm_weight(n):
        return 1.0 + 0.1 * rng.normal(size=n)

    tensors = {"model.embed_tokens.weight": rng.normal(size=(c["vocab_size"], hidden))}
    layer_norm_bias = c["norm"] == "layer" and c["bias"]

    def add_linear(name, rows, cols, bias):
        tensors[name + ".weight"] = matrix(rows, cols)
        if bias:
            tensors[name + ".bias"] = 0.1 * rng.normal(size=rows)

    for i in range(c["num_layers"]):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = norm_weight(hidden)
        if layer_norm_bias:
            tensors[p + "input_layernorm.bias"] = 0.1 * rng.normal(size=hidden)
        add_linear(p + "self_attn.q_proj", H * d, hidden, c["bias"])
        add_linear(p + "self_attn.k_proj", KV * d, hidden, c["bias"])
        add_linear(p + "self_attn.v_proj", KV * d, hidden, c["bias"])
        if c["gating"]:
            tensors[p + "self_attn.g_proj.weight"] = 0.5 * matrix(KV, hidden)
            tensors[p + "self_attn.g_proj.bias"] = rng.normal(size=KV)
        if c["qk_norm"]:
            tensors[p + "self_attn.q_norm.weight"] = norm_weight(d)
            tensors[p + "self_attn.k_norm.weight"] = norm_weight(d)
        add_linear(p + "self_attn.o_proj", hidden, H * d, c["bias"])
        tensors[p + "post_attention_layernorm.weight"] = norm_weight(hidden)
        if layer_norm_bias:
            tensors[p + "post_attention_layernorm.bias"] = 0.1 * rng.normal(size=hidden)
        if c["mlp"] == "swiglu":
            add_linear(p + "mlp.gate_proj", inter, hidden, c["bias"])
            add_linear(p + "mlp.up_proj", inter, hidden, c["bias"])
            add_linear(p + "mlp.down_proj", hidden, inter, c["bias"])
        else:
            add_linear(p + "mlp.c_fc", inter, hidden, c["bias"])
            add_linear(p + "mlp.c_proj", hidden, inter, c["bias"])
    tensors["model.norm.weight"] = norm_weight(hidden)
    if layer_norm_bias:
        tensors["model.norm.bias"] = 0.1 * rng.normal(size=hidden)
    if not c["tie_word_embeddings"]:
        tensors["lm_head.weight"] = matrix(c["vocab_size"], hidden)
    return {name: value.astype(np.float32) for name, value in tensors.items()}


def write_model(directory, config, tensors, dtype="F32", shards=1):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    names = list(tensors)
    if shards == 1:
        safetensors_io.write(os.path.join(directory, "model.safetensors"),
                             {n: (dtype, tensors[n]) for n in names}, {"format": "pt"})
        return
    weight_map = {}
    for s in range(shards):
        shard = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = names[s::shards]
        safetensors_io.write(os.path.join(directory, shard), {n: (dtype, tensors[n]) for n in part})
        weight_map.update({n: shard for n in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


def main(out_dir):
    cases = []
    for seed, (name, spec) in enumerate(sorted(MODELS.items())):
        rng = np.random.default_rng(1000 + seed)
        config = make_config(spec)
        directory = os.path.join(out_dir, name)
        write_model(directory, config, random_weights(config, rng), spec.get("dtype", "F32"),
                    spec.get("shards", 1))
        prompt_length = 5 * config["chunk_size"] + 3
        tokens = rng.integers(0, config["vocab_size"], prompt_length + DECODE_STEPS).tolist()
        logits = oracle.forward(oracle.Model(directory), tokens)
        logits_file = os.path.join(directory, "oracle_logits.f64")
        logits.astype("<f8").tofile(logits_file)
        cases.append({"name": name, "dir": directory, "tokens": tokens, "prompt_length": prompt_length,
                      "logits_file": logits_file, "vocab_size": config["vocab_size"]})
        print(f"{name}: {len(tokens)} tokens, logits max |{np.abs(logits).max():.3f}|", flush=True)
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
