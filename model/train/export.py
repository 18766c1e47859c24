"""Exports a trained SympowModel to a sympow model directory: model.safetensors (BF16) + config.json."""
import json
import os

import numpy as np

import safetensors_io


def write_model_dir(model, config, out_dir, dtype="BF16"):
    tensors = {}
    for name, value in model.state_dict().items():
        tensors[name] = (dtype, value.detach().float().cpu().numpy().astype(np.float32))
    safetensors_io.write(os.path.join(out_dir, "model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
