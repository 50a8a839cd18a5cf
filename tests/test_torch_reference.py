"""Our LLaMA against an independent PyTorch LLaMA written like Meta's model.py.

Skipped when torch is not installed (it is never a dependency):
    pip install torch==2.13.0
"""

import numpy as np
import pytest

import tinyllama_np as tl

pytestmark = pytest.mark.reference  # counted in the run's summary (conftest.py)
torch = pytest.importorskip("torch")
from tinyllama_np.bench.reference_torch import TorchLlama  # noqa: E402


@pytest.mark.parametrize("overrides", [
    dict(n_heads=4, n_kv_heads=4),
    dict(n_heads=6, n_kv_heads=2, dim=36),
    dict(n_heads=4, n_kv_heads=1, tie_embeddings=True, rope_theta=500000.0),
])
def test_logits_loss_and_every_gradient_match_pytorch(overrides):
    rng = np.random.default_rng(0)
    settings = dict(vocab_size=53, dim=32, n_layers=3, hidden_dim=56, max_seq_len=32, norm_eps=1e-6)
    settings.update(overrides)
    model = tl.Llama(tl.LlamaConfig(**settings), seed=1, dtype=np.float64)
    for param in model.params.values():  # move away from the near-linear initialisation
        param += rng.standard_normal(param.shape) * 0.1
    reference = TorchLlama(model.config, model.params, dtype=torch.float64)

    tokens = rng.integers(0, 53, size=(3, 19))
    targets = rng.integers(0, 53, size=(3, 19))
    targets[1, :4] = -1
    logits = model.forward(tokens)
    torch_logits = reference.forward(torch.tensor(tokens)).detach().numpy()
    np.testing.assert_allclose(logits, torch_logits, rtol=1e-12, atol=1e-12)

    loss, grads = model.loss_and_grads(tokens, targets)
    torch_loss = reference.loss(torch.tensor(tokens), torch.tensor(targets))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    torch_grads = reference.grads()
    assert set(torch_grads) == set(grads)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, torch_grads[name], rtol=1e-9, atol=1e-13, err_msg=name)


def test_float32_logits_match_pytorch():
    rng = np.random.default_rng(1)
    model = tl.Llama(tl.LlamaConfig(vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2), seed=0)
    reference = TorchLlama(model.config, model.params, dtype=torch.float32)
    tokens = rng.integers(0, 300, size=(2, 40))
    logits = model.forward(tokens)
    torch_logits = reference.forward(torch.tensor(tokens)).detach().numpy()
    np.testing.assert_allclose(logits, torch_logits, rtol=1e-4, atol=1e-5)
