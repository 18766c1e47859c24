"""sympow-cli as a user runs it: real model files on disk, bad input answered with one line."""
import json
import os
import shutil
import subprocess

import pytest

CLI = os.environ.get("SYMPOW_CLI", "build/clients/cli/sympow-cli")
BUNDLED = os.path.join(os.path.dirname(__file__), "..", "..", "models", "sympow-tiny")


def run(*args):
    result = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


def test_generate_streams_text_from_the_bundled_model():
    code, out, err = run("generate", "--model", BUNDLED, "--prompt", "And God said", "--max_new_tokens", "12",
                         "--seed", "3")
    assert code == 0, err
    assert out.startswith("And God said") and len(out) > len("And God said") + 5
    assert "generated" in err


def test_same_seed_gives_the_same_text():
    args = ("generate", "--model", BUNDLED, "--prompt", "The", "--max_new_tokens", "16", "--seed", "11")
    assert run(*args)[1] == run(*args)[1]


@pytest.mark.parametrize("args, message", [
    (("--model", "/nonexistent/model"), "not a model directory"),
    (("--model", BUNDLED, "--prompt", "x", "--top_p", "0"), "top_p = 0"),
    (("--model", BUNDLED, "--prompt", "one two three four", "--max_prompt_tokens", "2"),
     "more than --max_prompt_tokens=2"),
    (("--model", BUNDLED, "--prompt_ids", "1,x"), "'x' is not a token id"),
    (("--model", BUNDLED, "--prompt_ids", "99999"), "outside the vocabulary"),
    (("--model", BUNDLED, "--prompt", "a", "--prompt_ids", "1"), "exactly one of --prompt and --prompt_ids"),
])
def test_bad_input_is_one_line_and_a_failure(args, message):
    code, _, err = run("generate", *args)
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err


def copy_of_bundled(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(BUNDLED, target)
    return target


def test_corrupt_weights_are_reported(tmp_path):
    model = copy_of_bundled(tmp_path)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100000])
    code, _, err = run("generate", "--model", str(model), "--prompt", "x")
    assert code != 0 and "model.safetensors" in err and "error:" in err


def test_tokenizer_that_does_not_fit_the_model_is_reported(tmp_path):
    model = copy_of_bundled(tmp_path)
    spec = json.loads((model / "tokenizer.json").read_text())
    spec["added_tokens"].append({"id": 9000, "content": "<|extra|>"})
    (model / "tokenizer.json").write_text(json.dumps(spec))
    code, _, err = run("generate", "--model", str(model), "--prompt", "x")
    assert code != 0 and "token ids up to 9000 but the model's vocab_size is 8192" in err


def test_unknown_command_prints_usage():
    code, _, err = run("frobnicate")
    assert code == 2 and "generate" in err


def test_perplexity_scores_a_file(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("In the beginning God created the heaven and the earth. " * 20)
    code, out, err = run("perplexity", "--model", BUNDLED, "--file", str(text))
    assert code == 0, err
    assert "perplexity" in out


def loss_of(out):
    return float(out.split("loss")[1].split()[0])


def test_perplexity_by_decode_steps_matches_prefill_and_takes_a_state_dtype(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("In the beginning God created the heaven and the earth. " * 20)
    args = ("perplexity", "--model", BUNDLED, "--file", str(text), "--max_tokens", "120")
    code, prefill, err = run(*args)
    assert code == 0, err
    code, decode, err = run(*args, "--decode")
    assert code == 0 and "decode, float32 state" in decode, err
    assert abs(loss_of(decode) - loss_of(prefill)) < 1e-3
    code, bf16, err = run(*args, "--decode", "--state_dtype", "bfloat16")
    assert code == 0 and "bfloat16 state" in bf16, err
    assert abs(loss_of(bf16) - loss_of(prefill)) < 0.05
    code, _, err = run(*args, "--state_dtype", "fp8")
    assert code != 0 and '--state_dtype must be "float32" or "bfloat16"' in err
