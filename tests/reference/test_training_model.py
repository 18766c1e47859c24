"""The trainer's PyTorch model (chunked power attention) against the float64 oracle."""
import numpy as np
import pytest
import torch

import _paths  # noqa: F401  (makes model/train importable)
import oracle
from model import SympowModel


@pytest.mark.parametrize("chunk", [None, 5, 1000])
def test_chunked_training_model_matches_the_oracle_in_float64(models, chunk):
    checked = 0
    for case in models:
        reference = oracle.Model(case["dir"])
        if reference.config.get("norm", "rms") != "rms" or reference.config.get("bias"):
            continue  # the trainer covers the bundled model's options only
        net = SympowModel(reference.config, chunk_size=chunk)
        net.load_state_dict({k: torch.tensor(v) for k, v in reference.weights.items()}, strict=True)
        with torch.no_grad():
            logits = net.double()(torch.tensor([case["tokens"]]))[0].numpy()
        expected = np.fromfile(case["logits_file"]).reshape(len(case["tokens"]), -1)
        assert np.abs(logits - expected).max() / np.abs(expected).max() < 1e-12, case["name"]
        checked += 1
    assert checked >= 5


def test_trainer_rejects_options_it_does_not_implement(models):
    config = dict(oracle.Model(models[0]["dir"]).config, mlp="gelu_tanh")
    with pytest.raises(NotImplementedError, match="gelu_tanh"):
        SympowModel(config)
