# %% [markdown]
# # Lesson 04: masks, causal and padding
#
# Seed chapter, section 3.1.2 (解码器, decoder): the masked multi-head self-attention layer
# (掩码多头自注意力) "can only attend to earlier positions, so the model cannot peek at the
# future while generating". That one mask is what turns a Transformer into a language model.
#
# A correction to the chapter: LLaMA is decoder-only. It has the masked self-attention and the
# feed-forward layer of 3.1.2, but no encoder and no encoder-decoder (cross) attention.
#
# The second mask, the padding mask, lets sequences of different lengths share one batch.
#
# Run:  python lessons/04_masking.py

# %%
import numpy as np

import tinyllama_np as tl

rng = np.random.default_rng(0)


def show(mask, title):
    print(title)
    for row in np.broadcast_to(mask, mask.shape):
        print("   ", " ".join("x" if allowed else "." for allowed in row))


# %% [markdown]
# ## The causal mask
# Row i is the query at position i; column j the key at position j. "x" = may attend.

# %%
causal = tl.causal_mask(6)
show(causal, "causal mask, 6 positions (x = allowed):")

# %% [markdown]
# Masked scores are set to the most negative float before the softmax, so their weight is
# exactly 0 and each row's weights still sum to 1.

# %%
attention = tl.ScaledDotProductAttention()
q, k, v = (rng.standard_normal((6, 4)) for _ in range(3))
attention.forward(q, k, v, allowed=causal)
np.set_printoptions(precision=2, suppress=True)
print("attention weights with the causal mask:\n", attention.probs)
assert np.all(attention.probs[~causal] == 0)
assert np.allclose(attention.probs.sum(-1), 1)

# %% [markdown]
# ## No peeking: the future cannot change the past
# Change the token at position 4 of a sequence: logits at positions 0..3 are bit-for-bit the
# same, because no path leads from position 4 to them.

# %%
model = tl.Llama(tl.LlamaConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4), seed=0,
                 dtype=np.float64)
tokens = rng.integers(0, 50, size=(1, 8))
changed = tokens.copy()
changed[0, 4] = (changed[0, 4] + 1) % 50
difference = np.abs(model.forward(tokens) - model.forward(changed)).max(axis=-1)[0]
print("\nlargest logit change per position after changing token 4:", difference)
assert np.all(difference[:4] == 0) and np.all(difference[4:] > 0)

# %% [markdown]
# ## Padding: a batch of different lengths
# Three sequences of lengths 5, 3 and 4, right-padded to 5. The padding mask is True on real
# tokens; combined with the causal mask, every query sees only real, earlier keys.

# %%
lengths = [5, 3, 4]
padding = tl.padding_mask(lengths, 5)
show(padding, "padding mask (rows = sequences):")
allowed = tl.causal_mask(5)[None, None] & padding[:, None, None, :]
show(allowed[1, 0], "combined mask for sequence 1 (length 3):")

# With right padding, the causal mask already hides the padding from the real tokens (the
# padding comes after them). With LEFT padding, as used when generating from prompts of
# different lengths, only the padding mask hides it:
left_padded = np.array([[0, 0, 1, 1, 1]], dtype=bool)
show(tl.causal_mask(5) & left_padded[0], "causal & left padding (first 2 positions are padding):")

tokens = rng.integers(0, 50, size=(1, 5))
noise = tokens.copy()
noise[0, :2] = rng.integers(0, 50, size=2)  # different padding content
a = model.forward(tokens, attention_mask=left_padded)
b = model.forward(noise, attention_mask=left_padded)
print("largest change at real positions when only padding changes:", np.abs(a - b)[0, 2:].max())
assert np.allclose(a[0, 2:], b[0, 2:], atol=1e-12)

# %% [markdown]
# In the loss, padded positions get target -1 and are ignored (see nn/loss.py).
#
# ## The masks in the gradient check
# A masked score is replaced by a constant, so its gradient must be exactly 0.

# %%
print("\ngradient check, attention with causal + padding masks:")
q, k, v = (rng.standard_normal((3, 2, 5, 4)) for _ in range(3))
report = tl.gradcheck(tl.ScaledDotProductAttention(), q, k, v, allowed=allowed, verbose=True)
assert max(report.values()) < 1e-6

# %% [markdown]
# ## Exercise
# 1. Let the mask see one step into the future: `key_pos <= query_pos + 1` in
#    `tinyllama_np/nn/mask.py`. Run `pytest tests/test_model.py -k future`: which test fails?
#    Then think: a model trained that way reaches a very low loss. Why is it useless for
#    generation?
# 2. Build a batch whose first row is all padding. What does attention output for it, and why
#    is that harmless when its targets are -1?
