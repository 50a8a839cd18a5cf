"""Optimizers, schedule and clipping, against formulas written out longhand (and PyTorch when installed)."""

import math

import numpy as np
import pytest

from tinyllama_np.training.optim import SGD, AdamW, clip_grad_norm, learning_rate


def test_adamw_matches_the_formulas():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "norm.weight": rng.standard_normal(4)}
    reference = {name: p.copy() for name, p in params.items()}
    m = {name: np.zeros_like(p) for name, p in params.items()}
    v = {name: np.zeros_like(p) for name, p in params.items()}
    optimizer = AdamW(params, lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for t in range(1, 6):
        grads = {name: rng.standard_normal(p.shape) for name, p in params.items()}
        optimizer.step(grads)
        for name in params:
            g = grads[name]
            m[name] = 0.9 * m[name] + 0.1 * g
            v[name] = 0.95 * v[name] + 0.05 * g * g
            m_hat, v_hat = m[name] / (1 - 0.9 ** t), v[name] / (1 - 0.95 ** t)
            decay = 0.1 if name == "w" else 0.0  # no decay on 1-D norm scales
            reference[name] = reference[name] * (1 - 0.01 * decay) - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8)
            np.testing.assert_allclose(params[name], reference[name], rtol=1e-12, atol=1e-14)


@pytest.mark.reference
def test_adamw_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    params = {"layers.0.w": rng.standard_normal((5, 3)).astype(np.float32)}
    torch_param = torch.nn.Parameter(torch.tensor(params["layers.0.w"]))
    ours = AdamW(params, lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    theirs = torch.optim.AdamW([torch_param], lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for _ in range(10):
        grad = rng.standard_normal((5, 3)).astype(np.float32)
        ours.step({"layers.0.w": grad})
        torch_param.grad = torch.tensor(grad)
        theirs.step()
    np.testing.assert_allclose(params["layers.0.w"], torch_param.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_adamw_keeps_float32_and_updates_in_place():
    params = {"w": np.ones((2, 2), np.float32)}
    array = params["w"]
    AdamW(params, lr=0.1).step({"w": np.ones((2, 2), np.float32)})
    assert params["w"] is array and array.dtype == np.float32
    assert np.all(array < 1)


def test_frozen_parameters_never_move():
    params = {"a": np.ones((2, 2)), "b": np.ones((2, 2))}
    optimizer = AdamW(params, lr=0.1, frozen={"a"})
    optimizer.step({"a": np.ones((2, 2)), "b": np.ones((2, 2))})
    assert np.all(params["a"] == 1) and np.all(params["b"] < 1)


def test_sgd_with_momentum():
    params = {"w": np.array([[1.0]])}
    optimizer = SGD(params, lr=0.1, momentum=0.5)
    optimizer.step({"w": np.array([[1.0]])})  # velocity 1
    optimizer.step({"w": np.array([[1.0]])})  # velocity 1.5
    assert params["w"][0, 0] == pytest.approx(1 - 0.1 - 0.15)


def test_optimizer_state_round_trip():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 3))}
    optimizer = AdamW(params)
    optimizer.step({"w": rng.standard_normal((3, 3))})
    arrays, info = optimizer.state()
    other = AdamW({"w": params["w"].copy()})
    other.load_state({k: v.copy() for k, v in arrays.items()}, info)
    grad = rng.standard_normal((3, 3))
    optimizer.step({"w": grad})
    other.step({"w": grad.copy()})
    np.testing.assert_array_equal(other.params["w"], params["w"])
    with pytest.raises(ValueError, match="shape"):
        AdamW({"w": np.zeros((2, 2))}).load_state(arrays, info)


def test_schedule_warmup_then_cosine_to_floor():
    values = [learning_rate(s, 1.0, 10, 110, 0.1) for s in range(120)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(values[:9], values[1:10]))  # rising during warm-up
    assert all(a >= b for a, b in zip(values[10:110], values[11:111]))  # then falling
    assert values[60] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert values[110] == pytest.approx(0.1) and values[119] == pytest.approx(0.1)


def test_clip_grad_norm():
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 10.0) == pytest.approx(5.0)
    assert grads["a"][0] == 3.0  # under the limit: untouched
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    assert np.hypot(grads["a"][0], grads["b"][0]) == pytest.approx(1.0, rel=1e-5)
    assert grads["a"][0] / grads["b"][0] == pytest.approx(0.75)  # direction kept
