"""Writes the PyTorch model's logits for a few prompts, for the C++ engine to match.

usage: logits_fixture.py MODEL_DIR OUT_PREFIX   ->  OUT_PREFIX.json (prompts, token ids, rows)
                                                    OUT_PREFIX.f32 (logits of those rows)
The model is built from the exported (BF16) weights, so both sides use the same numbers; every
8th position and the last of each prompt are kept.
"""
import json
import os
import sys

import numpy as np
import torch

import safetensors_io
from model import SympowModel
from tokenizer import Tokenizer

PROMPTS = [
    "In the beginning God created the heaven and the earth.",
    "dog: a member of the genus Canis that has been domesticated by man since prehistoric times",
    "A fool and his money are soon parted. Never put off until tomorrow what you can do today; "
    "the early bird gets the worm, but the second mouse gets the cheese.",
]


def main(model_dir, out_prefix):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    model = SympowModel(config)
    weights = safetensors_io.read(os.path.join(model_dir, "model.safetensors"))
    model.load_state_dict({name: torch.tensor(value, dtype=torch.float32) for name, value in weights.items()})
    model.eval()
    tokenizer = Tokenizer(os.path.join(model_dir, "tokenizer.json"))
    cases, rows = [], []
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        with torch.no_grad():
            logits = model(torch.tensor([ids]))[0].numpy()
        positions = sorted(set(range(0, len(ids), 8)) | {len(ids) - 1})
        cases.append({"prompt": prompt, "ids": ids, "positions": positions})
        rows.extend(logits[p] for p in positions)
    np.asarray(rows, dtype="<f4").tofile(out_prefix + ".f32")
    with open(out_prefix + ".json", "w") as f:
        json.dump({"model": model_dir, "vocab_size": config["vocab_size"], "cases": cases}, f, indent=1)
    print(f"{len(rows)} logit rows from {len(cases)} prompts", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
