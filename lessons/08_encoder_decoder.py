# %% [markdown]
# # Lesson 08: the original Transformer, an encoder and a decoder
#
# Seed chapter, section 3.1. The 2017 Transformer was built for translation: an encoder
# (编码器) reads the whole source sentence, a decoder (解码器) writes the target one token at a
# time. Each decoder layer has three sub-layers (3.1.2):
#
# 1. masked self-attention (掩码自注意力) over the target written so far (the causal mask of
#    lesson 04),
# 2. encoder-decoder attention (编码器-解码器注意力), "cross-attention": queries from the
#    target, keys and values from the encoder's output,
# 3. the feed-forward network of lesson 07,
#
# each inside a residual connection and a LayerNorm. The encoder's layers have only 1 (without
# the mask: every source word sees every other) and 3.
#
# We build it from the components of lessons 02-07, train it on a small translation task
# (English number words <-> Chinese numerals) and look at what the cross-attention learnt.
#
# Run:  python lessons/08_encoder_decoder.py

# %%
import os

# Small matrix products run faster on one BLAS thread (see the README's benchmark notes);
# this applies only if you have not chosen a setting yourself.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import tinyllama_np as tl  # noqa: E402
from tinyllama_np.generation.seq2seq import translate  # noqa: E402
from tinyllama_np.plot import line_chart, save_heatmap_png  # noqa: E402
from tinyllama_np.stories import numbers as task  # noqa: E402
from tinyllama_np.training import number_task  # noqa: E402
from tinyllama_np.training.task_loop import TaskSettings  # noqa: E402

print("BLAS threads:", os.environ["OPENBLAS_NUM_THREADS"])
rng = np.random.default_rng(0)

# %% [markdown]
# ## Cross-attention by itself
# A target of 3 positions reads a source of 5, of which the second row's last 2 are padding.
# The attention weights form a (target, source) map per head; padded source columns get
# weight 0, and every row still sums to 1.

# %%
dim, n_heads, head_dim = 8, 2, 4


def weight(rows, columns):
    return rng.standard_normal((rows, columns)) / np.sqrt(columns)


cross = tl.CrossAttention(weight(8, dim), weight(8, dim), weight(8, dim), weight(dim, 8), n_heads)
target_stream = rng.standard_normal((2, 3, dim))
memory = rng.standard_normal((2, 5, dim))
source_mask = tl.padding_mask([5, 3], 5)
out = cross.forward(target_stream, memory, source_mask[:, None, None, :])
print("target stream", target_stream.shape, "+ memory", memory.shape, "-> output", out.shape)
print("attention weights (batch, heads, target, source):", cross.weights.shape)
print("row 1, head 0 (source positions 3 and 4 are padding):")
print(np.round(cross.weights[1, 0], 3))
assert np.all(cross.weights[1, :, :, 3:] == 0)
assert np.allclose(cross.weights.sum(axis=-1), 1)

# The backward returns TWO gradients: for the target stream (through the queries) and for
# the memory (through the keys and values): that is how the decoder's loss reaches the encoder.
report = tl.gradcheck(cross, target_stream, memory, allowed=source_mask[:, None, None, :])
print("gradient check, worst relative error:", f"{max(report.values()):.1e}")
assert max(report.values()) < 1e-6

# %% [markdown]
# ## The whole model, and what LLaMA kept
# Post-norm, as in the paper: each sub-layer is y = LayerNorm(x + sublayer(x)).

# %%
config = number_task.encoder_decoder_config()
model = tl.EncoderDecoder(config, seed=0)
print(f"\n{config.n_encoder_layers} encoder + {config.n_decoder_layers} decoder layers, dim {config.dim}, "
      f"{model.num_params():,} parameters; one decoder layer's weights:")
for name, param in model.params.items():
    if name.startswith("decoder.layers.0."):
        print(f"  {name:<52s} {param.shape}")

print("""
                      2017 Transformer            LLaMA
  structure           encoder + decoder           decoder only (no cross-attention)
  normalisation       LayerNorm, after the sum    RMSNorm, before the sub-layer (pre-norm)
  positions           sinusoidal, added once      RoPE, rotating q and k in every layer
  feed-forward        ReLU MLP                    SwiGLU
  kept                attention, residuals, the causal decoder, the feed-forward layer""")

# %% [markdown]
# ## The task: numbers in words, both ways
# Numbers 0..99,999. The held-out numbers are never trained on, in either direction, so a
# right answer shows the model learnt the rules, not the pairs. English groups digits by
# thousands, Chinese by 万 (ten thousand), and Chinese writes one 零 for a run of zeros.

# %%
for n in (7, 15, 342, 10005, 20310):
    print(f"  {n:>6}  {task.english_words(n):<42s} {task.chinese_numerals(n)}")
train_numbers, held_out = task.split_numbers(seed=0)
source, target_in, target_out, source_mask = task.seq2seq_batch([342], ["en-zh"])
print("\nsource ids ", source[0].tolist(), "->", [task.VOCABULARY[i] for i in source[0]])
print("target in  ", [task.VOCABULARY[i] for i in target_in[0]])
print("target out ", [task.VOCABULARY[i] for i in target_out[0]])

# %% [markdown]
# ## Training (seconds)
# AdamW with warm-up (post-norm needs it), both directions mixed in each batch.

# %%
settings = TaskSettings(steps=300, batch_size=64, lr=3e-3, warmup_steps=50)
model, losses, seconds = number_task.train_encoder_decoder(train_numbers, settings)
print(f"\n{settings.steps} steps in {seconds:.1f} s")
print(line_chart(losses, height=8))
assert losses[-1] < losses[0] / 10

evaluated = held_out[:300]
scores, misses = number_task.exact_match(number_task.encoder_decoder_answers, model, evaluated)
print("held-out exact match:", {d: f"{s:.1%}" for d, s in scores.items()}, f"({len(evaluated)} numbers)")
for direction, n, answer in misses[:4]:
    print(f"  miss {direction} {n}: {answer!r}, expected {number_task.expected_answer(n, direction)!r}")
assert min(scores.values()) > 0.5
# (The command `tinyllama-np seq2seq` trains longer and reaches 99%+ on 2,000 held-out numbers.)

# %% [markdown]
# ## Generation: the encoder once, the cross keys/values once, a KV cache for the rest
# Greedy search with and without the caches gives the same answers; beam search (lesson 14)
# works here unchanged.

# %%
source, _, _, source_mask = task.seq2seq_batch(evaluated[:100], ["en-zh"] * 100)
start = time.perf_counter()
cached = translate(model, source, task.BOS_ID, task.EOS_ID, 12, source_mask)
cached_time = time.perf_counter() - start
start = time.perf_counter()
uncached = translate(model, source, task.BOS_ID, task.EOS_ID, 12, source_mask, use_cache=False)
uncached_time = time.perf_counter() - start
assert cached == uncached
print(f"\n100 translations: cached {cached_time * 1000:.0f} ms, re-running everything "
      f"{uncached_time * 1000:.0f} ms, same answers")
beam = translate(model, source[:5], task.BOS_ID, task.EOS_ID, 12, source_mask[:5], num_beams=4)
print("beam search (4 beams):", [task.decode(ids, "zh") for ids in beam])

# %% [markdown]
# ## Which source word does each output character look at?
# The cross-attention weights of the last decoder layer, averaged over heads, while the
# model writes the answer for a held-out number with an inner zero. Rows: output characters;
# columns: source words. Darker is more attention.

# %%
n = int(next(m for m in held_out if m > 10_000 and "0" in str(m)[1:-1]))
source, target_in, _, source_mask = task.seq2seq_batch([n], ["en-zh"])
answer = translate(model, source, task.BOS_ID, task.EOS_ID, 12, source_mask)[0]
model.forward(source, np.array([[task.BOS_ID] + answer]), source_mask)
weights = model.decoder_layers[-1].cross_attention.weights[0].mean(axis=0)  # (target, source)
source_words = [task.VOCABULARY[i] for i in source[0]]
output_chars = [task.VOCABULARY[i] for i in answer] + ["<eos>"]
print(f"\n{task.english_words(n)} -> {task.decode(answer, 'zh')}")
print(" " * 7 + "".join(f"{w[:7]:>8s}" for w in source_words))
for char, row in zip(output_chars, weights):
    print(f"{char:>6s} " + "".join(f"{'#' * int(round(v * 7)):>8s}" for v in row))
picture = os.path.join(tempfile.mkdtemp(prefix="lesson08_"), "cross_attention.png")
save_heatmap_png(picture, weights / weights.max())
print("picture (rows: output characters, columns: source words):", picture)
assert np.allclose(weights.sum(axis=-1), 1)

# %% [markdown]
# ## Exercise
# 1. Train with `norm_first=True` (pre-norm, `number_task.encoder_decoder_config(norm_first=True)`)
#    and without warm-up (`warmup_steps=0`) in both set-ups: which one still learns?
# 2. Look at the map for 10005 (一万零五): where does 零 look, when English has no word for it?
# 3. Remove the cross-attention's source mask (pass `source_mask=None` with padded sources)
#    and measure how much the exact match drops.
