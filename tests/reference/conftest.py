"""Shared pytest setup: import paths and the random models with their oracle logits."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import make_models  # noqa: E402


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """The generated models' cases (make_models.py), written once per test session."""
    out = tmp_path_factory.mktemp("models")
    make_models.main(str(out))
    with open(out / "cases.json") as f:
        return json.load(f)["cases"]
