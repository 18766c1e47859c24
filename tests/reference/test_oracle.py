"""Checks the oracle itself, against formulations that share none of its code."""

import numpy as np
import pytest

import oracle
import safetensors_io


def full_tensor_power(x, p):
    """x^{⊗p} as a flat d^p vector: <x^{⊗p}, y^{⊗p}> = (x.y)^p with no symmetry tricks."""
    out = x
    for _ in range(p - 1):
        out = np.kron(out, x)
    return out


@pytest.mark.parametrize("degree", [2, 4])
def test_quadratic_form_equals_recurrent_form(degree):
    rng = np.random.default_rng(degree)
    T, d = 12, 4
    q, k, v = rng.normal(size=(3, T, d))
    log_gate = np.log(rng.uniform(0.5, 1.0, T))
    scale = 0.7
    expected = oracle.power_attention(q, k, v, log_gate, degree, scale)
    S = np.zeros((d ** degree, d))
    z = np.zeros(d ** degree)
    for t in range(T):
        g = np.exp(log_gate[t])
        phi_k = full_tensor_power(k[t], degree)
        S = g * S + np.outer(phi_k, v[t])
        z = g * z + phi_k
        phi_q = full_tensor_power(q[t], degree) * scale ** degree
        y = phi_q @ S / (phi_q @ z + oracle.EPSILON)
        np.testing.assert_allclose(expected[t], y, rtol=1e-10, atol=1e-12)


def test_strong_forgetting_leaves_only_the_current_token():
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(3, 6, 8))
    y = oracle.power_attention(q, k, v, np.full(6, -200.0), 2, 1.0)
    weights = (q * k).sum(-1) ** 2
    np.testing.assert_allclose(y, v * (weights / (weights + oracle.EPSILON))[:, None], rtol=1e-12)


def test_every_generated_model_is_causal(models):
    for case in models:
        model = oracle.Model(case["dir"])
        tokens = case["tokens"][:20]
        changed = tokens[:10] + [(t + 1) % case["vocab_size"] for t in tokens[10:]]
        a, b = oracle.forward(model, tokens), oracle.forward(model, changed)
        np.testing.assert_array_equal(a[:10], b[:10])
        assert not np.allclose(a[10:], b[10:]), case["name"]


def test_generated_logits_are_the_oracles(models):
    for case in models:
        stored = np.fromfile(case["logits_file"], dtype="<f8").reshape(len(case["tokens"]), -1)
        np.testing.assert_array_equal(stored, oracle.forward(oracle.Model(case["dir"]), case["tokens"]))
        assert np.isfinite(stored).all()


def test_safetensors_round_trip_and_bf16_rounding(tmp_path):
    values = np.array([[1.0, -2.5, 3.14159], [1e-3, 0.0, 65504.0]], dtype=np.float32)
    path = tmp_path / "t.safetensors"
    safetensors_io.write(path, {"a": ("F32", values), "b": ("BF16", values), "c": ("F16", values)})
    read = safetensors_io.read(path)
    np.testing.assert_array_equal(read["a"], values)
    np.testing.assert_allclose(read["b"], values, rtol=2 ** -8)
    np.testing.assert_allclose(read["c"], values, rtol=2 ** -11)
    # 1 + 2^-8 is a tie between bf16 neighbours 1 and 1 + 2^-7: round to even gives 1.
    tie = safetensors_io.float32_to_bf16_bits(np.array([1 + 2 ** -8], dtype=np.float32))
    assert safetensors_io.bf16_bits_to_float64(tie)[0] == 1.0
