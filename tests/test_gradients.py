"""Every component's backward against central differences, in float64.

Shapes are deliberately not special: batch > 1, odd sizes, GQA groups > 1, padded rows.
"""

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.nn import CrossEntropyLoss, causal_mask, padding_mask

TOLERANCE = 1e-6


def assert_gradients_match(report):
    assert report, "gradcheck checked nothing"
    worst = max(report, key=report.get)
    assert report[worst] < TOLERANCE, f"{worst}: relative error {report[worst]:.2e}\n{report}"


def normal(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


@pytest.mark.parametrize("order", ["C", "F"])
def test_linear(rng, order):
    """Both memory orders of the weight: Llama stores its matrices column by column ("F")."""
    linear = tl.Linear(np.asarray(normal(rng, 5, 7), order=order))
    report = tl.gradcheck(linear, normal(rng, 3, 4, 7))
    assert set(report) == {"input 0", "param weight"}
    assert_gradients_match(report)
    assert linear.grads["weight"].flags[f"{order}_CONTIGUOUS"]  # the gradient keeps the order


def test_embedding_repeated_tokens(rng):
    tokens = np.array([[1, 4, 1, 0], [4, 4, 2, 9]])  # repeats must accumulate
    report = tl.gradcheck(tl.Embedding(normal(rng, 11, 6)), tokens)
    assert set(report) == {"param weight"}
    assert_gradients_match(report)


def test_rmsnorm(rng):
    norm = tl.RMSNorm(1 + normal(rng, 7, scale=0.3), eps=1e-5)
    assert_gradients_match(tl.gradcheck(norm, normal(rng, 3, 5, 7)))


def test_layernorm(rng):
    norm = tl.LayerNorm(1 + normal(rng, 7, scale=0.3), normal(rng, 7, scale=0.3))
    assert_gradients_match(tl.gradcheck(norm, normal(rng, 3, 5, 7)))


@pytest.mark.parametrize("start_pos", [0, 5])
def test_rope(rng, start_pos):
    rope = tl.RoPE(tl.rope_rotations(head_dim=6, max_seq_len=16, theta=500.0))
    report = tl.gradcheck(rope, normal(rng, 2, 5, 3, 6), start_pos=start_pos)
    assert_gradients_match(report)


def test_sinusoidal(rng):
    positions = tl.SinusoidalPositions(tl.sinusoidal_encoding(16, 6))
    assert_gradients_match(tl.gradcheck(positions, normal(rng, 2, 5, 6), start_pos=3))


def test_softmax(rng):
    assert_gradients_match(tl.gradcheck(tl.Softmax(), normal(rng, 3, 4, 9, scale=2.0)))


def test_attention_causal(rng):
    q, k, v = normal(rng, 2, 3, 5, 4), normal(rng, 2, 3, 5, 4), normal(rng, 2, 3, 5, 6)
    report = tl.gradcheck(tl.ScaledDotProductAttention(), q, k, v, allowed=causal_mask(5))
    assert set(report) == {"input 0", "input 1", "input 2"}
    assert_gradients_match(report)


def test_attention_padded_batch(rng):
    # Row 0 has 5 real tokens, row 1 only 3; the last 2 keys of row 1 are hidden.
    allowed = causal_mask(5)[None, None] & padding_mask([5, 3], 5)[:, None, None, :]
    q, k, v = normal(rng, 2, 3, 5, 4), normal(rng, 2, 3, 5, 4), normal(rng, 2, 3, 5, 4)
    assert_gradients_match(tl.gradcheck(tl.ScaledDotProductAttention(), q, k, v, allowed=allowed))


def test_attention_cross_lengths_without_mask(rng):
    q, k, v = normal(rng, 2, 3, 4), normal(rng, 2, 7, 4), normal(rng, 2, 7, 5)
    assert_gradients_match(tl.gradcheck(tl.ScaledDotProductAttention(), q, k, v))


@pytest.mark.parametrize("n_queries,n_keys", [(7, 7), (3, 8)])
def test_causal_attention_in_blocks(rng, n_queries, n_keys):
    # Blocks of 3 queries: a ragged last block, and queries at an offset (a cached prefix).
    q, k, v = normal(rng, 2, 3, n_queries, 4), normal(rng, 2, 3, n_keys, 4), normal(rng, 2, 3, n_keys, 5)
    report = tl.gradcheck(tl.CausalAttention(block_size=3), q, k, v)
    assert set(report) == {"input 0", "input 1", "input 2"}
    assert_gradients_match(report)


def test_causal_attention_equals_masked_attention(rng):
    q, k, v = normal(rng, 2, 3, 10, 4), normal(rng, 2, 3, 10, 4), normal(rng, 2, 3, 10, 5)
    d_out = normal(rng, 2, 3, 10, 5)
    blocked, masked = tl.CausalAttention(block_size=4), tl.ScaledDotProductAttention()
    np.testing.assert_allclose(blocked.forward(q, k, v),
                               masked.forward(q, k, v, allowed=causal_mask(10)), atol=1e-12)
    for mine, theirs in zip(blocked.backward(d_out), masked.backward(d_out)):
        np.testing.assert_allclose(mine, theirs, atol=1e-12)


@pytest.mark.parametrize("n_heads,n_kv_heads", [(3, 3), (6, 2), (4, 1)])
def test_multi_head_attention(rng, n_heads, n_kv_heads):
    head_dim, dim, seq_len = 4, 10, 5
    attention = tl.MultiHeadAttention(
        wq=normal(rng, n_heads * head_dim, dim, scale=0.5),
        wk=normal(rng, n_kv_heads * head_dim, dim, scale=0.5),
        wv=normal(rng, n_kv_heads * head_dim, dim, scale=0.5),
        wo=normal(rng, dim, n_heads * head_dim, scale=0.5),
        n_heads=n_heads, n_kv_heads=n_kv_heads,
        rotations=tl.rope_rotations(head_dim, 16))
    allowed = causal_mask(seq_len)[None, None] & padding_mask([5, 4], seq_len)[:, None, None, :]
    report = tl.gradcheck(attention, normal(rng, 2, seq_len, dim), allowed=allowed)
    assert set(report) == {"input 0", "param wq.weight", "param wk.weight",
                           "param wv.weight", "param wo.weight"}
    assert_gradients_match(report)


def test_multi_head_attention_causal(rng):
    attention = tl.MultiHeadAttention(normal(rng, 12, 10), normal(rng, 4, 10), normal(rng, 4, 10),
                                      normal(rng, 10, 12), n_heads=3, n_kv_heads=1,
                                      rotations=tl.rope_rotations(4, 80))
    attention.causal_attention.block_size = 16  # 70 positions: 5 blocks, the last ragged
    report = tl.gradcheck(attention, normal(rng, 1, 70, 10), allowed="causal", max_entries=60)
    assert_gradients_match(report)


def test_multi_head_attention_at_offset(rng):
    attention = tl.MultiHeadAttention(normal(rng, 8, 6), normal(rng, 4, 6), normal(rng, 4, 6),
                                      normal(rng, 6, 8), n_heads=2, n_kv_heads=1,
                                      rotations=tl.rope_rotations(4, 16))
    report = tl.gradcheck(attention, normal(rng, 2, 3, 6), start_pos=7)
    assert_gradients_match(report)


def test_swiglu(rng):
    ffn = tl.SwiGLU(normal(rng, 9, 7), normal(rng, 7, 9), normal(rng, 9, 7))
    assert_gradients_match(tl.gradcheck(ffn, normal(rng, 2, 3, 7)))


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_mlp(rng, activation):
    mlp = tl.MLP(normal(rng, 9, 7), normal(rng, 7, 9), activation)
    assert_gradients_match(tl.gradcheck(mlp, normal(rng, 2, 3, 7)))


def test_cross_entropy_with_ignored_targets(rng):
    targets = np.array([[3, -1, 0, 10], [-1, 7, 7, 2], [1, 1, -1, 5]])
    report = tl.gradcheck(CrossEntropyLoss(), normal(rng, 3, 4, 11, scale=2.0), targets)
    assert set(report) == {"input 0"}
    assert_gradients_match(report)


def test_cross_entropy_value(rng):
    logits = normal(rng, 4, 6)
    targets = np.array([2, -1, 5, 0])
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean([log_probs[0, 2], log_probs[2, 5], log_probs[3, 0]])
    assert CrossEntropyLoss().forward(logits, targets) == pytest.approx(expected, rel=1e-12)


def test_attention_query_that_sees_nothing(rng):
    # Left padding: in row 1 the first two positions are padding, so query 0 may look at no
    # key at all. Its scores are constants, and no gradient may flow through them.
    allowed = causal_mask(4)[None, None] & np.array([[1, 1, 1, 1], [0, 0, 1, 1]], bool)[:, None, None, :]
    q, k, v = normal(rng, 2, 2, 4, 3), normal(rng, 2, 2, 4, 3), normal(rng, 2, 2, 4, 3)
    assert_gradients_match(tl.gradcheck(tl.ScaledDotProductAttention(), q, k, v, allowed=allowed))


def float32_cases(rng):
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    allowed = causal_mask(5)
    return {
        "Linear": (tl.Linear(f32(4, 6)), (f32(2, 5, 6),), {}),
        "RMSNorm": (tl.RMSNorm(f32(6)), (f32(2, 5, 6),), {}),
        "LayerNorm": (tl.LayerNorm(f32(6), f32(6)), (f32(2, 5, 6),), {}),
        "RoPE": (tl.RoPE(tl.rope_rotations(4, 8)), (f32(2, 5, 3, 4),), {}),
        "Sinusoidal": (tl.SinusoidalPositions(tl.sinusoidal_encoding(8, 6)), (f32(2, 5, 6),), {}),
        "Softmax": (tl.Softmax(), (f32(3, 7),), {}),
        "Attention": (tl.ScaledDotProductAttention(), (f32(2, 5, 4), f32(2, 5, 4), f32(2, 5, 4)),
                      {"allowed": allowed}),
        "MultiHeadAttention": (tl.MultiHeadAttention(f32(8, 6), f32(4, 6), f32(4, 6), f32(6, 8), 2, 1,
                                                     tl.rope_rotations(4, 8)), (f32(2, 5, 6),), {}),
        "SwiGLU": (tl.SwiGLU(f32(9, 6), f32(6, 9), f32(9, 6)), (f32(2, 5, 6),), {}),
        "MLP gelu": (tl.MLP(f32(9, 6), f32(6, 9)), (f32(2, 5, 6),), {}),
        "MLP relu": (tl.MLP(f32(9, 6), f32(6, 9), "relu"), (f32(2, 5, 6),), {}),
    }


def test_float32_in_float32_out_forward_and_backward(rng):
    # No silent upcast: a stray float64 constant would turn every result into float64.
    for name, (module, inputs, kwargs) in float32_cases(rng).items():
        out = module.forward(*inputs, **kwargs)
        assert out.dtype == np.float32, name
        grads = module.backward(np.ones_like(out))
        grads = grads if isinstance(grads, tuple) else (grads,)
        assert all(g.dtype == np.float32 for g in grads), name
        assert all(g.dtype == np.float32 for g in module.grads.values()), name
    loss = CrossEntropyLoss()
    loss.forward(rng.standard_normal((3, 5)).astype(np.float32), np.array([0, 1, 2]))
    assert loss.backward().dtype == np.float32


def test_cross_entropy_in_place_gives_the_same_loss_and_gradient(rng):
    logits, targets = normal(rng, 3, 4, 9), np.array([[1, -1, 4, 0], [8, 8, 2, -1], [0, 1, 2, 3]])
    copy_loss, in_place_loss = CrossEntropyLoss(), CrossEntropyLoss()
    expected = copy_loss.forward(logits, targets)
    original = logits.copy()
    assert copy_loss.forward(logits, targets) == expected and np.array_equal(logits, original)
    assert in_place_loss.forward(logits, targets, overwrite_logits=True) == expected
    np.testing.assert_array_equal(in_place_loss.backward(), copy_loss.backward())
