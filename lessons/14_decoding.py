# %% [markdown]
# # Lesson 14: decoding, from next-token probabilities to text
#
# Seed chapter, section 3.3 (生成策略, generation strategies). A language model such as
# LLaMA (a decoder-only Transformer: no encoder) only ever gives one thing: a probability
# for every possible NEXT token. Text comes out of a loop: predict, choose one token,
# append it, predict again ("autoregressive" generation). How we choose is the decoding
# strategy:
#
#   3.3.1 greedy search (贪婪搜索)     always the most probable token
#   3.3.2 beam search (束搜索)         keep the k most probable partial texts
#   3.3.3 top-k sampling (顶端采样)    draw among the k most probable tokens
#   3.3.4 nucleus / top-p sampling (核采样)   draw among the fewest tokens holding mass p
#
# and, on top of all of them, the KV cache makes every step cheap.
#
# Run:  python lessons/14_decoding.py

# %%
import time

import numpy as np

import tinyllama_np as tl
from tinyllama_np.generation.beam_search import beam_search
from tinyllama_np.generation.generate import Decoder
from tinyllama_np.training.optim import AdamW
from tinyllama_np.generation.sampling import next_token_probs, softmax, top_k_filter, top_p_filter

rng = np.random.default_rng(0)


def bars(probs, labels, top=8, kept=None, width=36):
    """The `top` most probable tokens as a bar chart; '*' marks the tokens in `kept`."""
    for index in np.argsort(-probs, kind="stable")[:top]:
        mark = "" if kept is None else ("*" if kept[index] > 0 else " ")
        bar = "#" * int(round(width * probs[index] / probs.max()))
        print(f"   {mark}{labels[index]!r:>6} {bar:<{width}} {probs[index]:.3f}")


# %% [markdown]
# ## A tiny model that knows a little
# Decoding is only interesting when the model has opinions. We train a character-level
# LLaMA for a few seconds (150 steps) on sentences from a toy grammar ("the cat sat on the mat.").
# Each character is one token.

# %%
SUBJECTS = ["the cat", "the dog", "a bird", "the fox", "my cat"]
VERBS = ["sat on", "ate", "saw", "chased", "slept on"]
OBJECTS = ["the mat", "a rat", "the log", "the fish", "a hat", "the dog"]
sentences = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
             for _ in range(400)]
text = " ".join(sentences)
chars = sorted(set(text))
char_id = {c: i for i, c in enumerate(chars)}
data = np.array([char_id[c] for c in text])


def encode(string):
    return [char_id[c] for c in string]


def decode(ids):
    return "".join(chars[i] for i in ids)


config = tl.LlamaConfig(vocab_size=len(chars), dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                        max_seq_len=64)
model = tl.Llama(config, seed=0)
print(f"{len(text)} characters, vocabulary of {len(chars)}: {''.join(chars)!r}")

optimizer = AdamW(model.params, lr=3e-3, betas=(0.9, 0.999), weight_decay=0.0)  # lesson 10
start = time.perf_counter()
for step in range(1, 151):
    rows = rng.integers(0, len(data) - 33, size=16)[:, None] + np.arange(32)
    loss, grads = model.loss_and_grads(data[rows], data[rows + 1])
    optimizer.step(grads)
    if step == 1:
        first_loss = loss
    if step % 50 == 0:
        print(f"  step {step}  loss {loss:.3f}")
print(f"  trained in {time.perf_counter() - start:.1f} s (loss at step 1: {first_loss:.3f})")
assert loss < 0.6 * first_loss


# %% [markdown]
# ## The next-token distribution
# After "the cat " the grammar allows five verbs; after "the cat sat on the " three
# letters start the objects. The model's softmax(logits) shows what it learned.

# %%
def next_logits(prompt):
    return model.forward(np.array([encode(prompt)]))[0, -1]


for prompt in ["the cat ", "the cat sat on the "]:
    print(f"\nP(next | {prompt!r}):")
    bars(softmax(next_logits(prompt)), chars)

# %% [markdown]
# ## Temperature reshapes the distribution
# softmax(logits / T): T < 1 sharpens it (T -> 0 is greedy search), T > 1 flattens it
# (more surprising choices, more mistakes). The entropy, in bits, measures the spread.

# %%
logits = next_logits("the cat ")
entropies = []
for temperature in [0.5, 1.0, 2.0]:
    probs = next_token_probs(logits, temperature=temperature)
    entropies.append(-np.sum(probs * np.log2(probs + 1e-30)))
    print(f"\ntemperature {temperature}: entropy {entropies[-1]:.2f} bits")
    bars(probs, chars, top=6)
assert entropies[0] < entropies[1] < entropies[2]

# %% [markdown]
# ## What top-k and top-p cut (3.3.3, 3.3.4)
# Top-k keeps a fixed number of tokens, however the probability is spread. Top-p keeps the
# fewest tokens whose probabilities add up to p: few when the model is sure, many when it is
# not. '*' marks the tokens kept; the others get probability 0 and the kept ones are
# renormalised to sum to 1. After "the cat sat on the " four letters start a valid object
# (mat, log, fish, dog): top-k with k = 3 cuts a good one; top-p adapts.

# %%
for prompt in ["the cat ", "the cat sat on the "]:
    probs = softmax(next_logits(prompt))
    top_k_kept, top_p_kept = top_k_filter(probs, 3), top_p_filter(probs, 0.8)
    print(f"\nafter {prompt!r}: top-k (k = 3) keeps {np.count_nonzero(top_k_kept)}")
    bars(probs, chars, top=6, kept=top_k_kept)
    print(f"after {prompt!r}: top-p (p = 0.8) keeps {np.count_nonzero(top_p_kept)}")
    bars(probs, chars, top=6, kept=top_p_kept)
    assert np.count_nonzero(top_k_kept) == 3
    # The nucleus is the smallest set holding at least p: without its least likely member
    # it would hold less.
    nucleus = probs[top_p_kept > 0]
    assert nucleus.sum() >= 0.8 and nucleus.sum() - nucleus.min() < 0.8

# %% [markdown]
# ## Four strategies on one prompt
# Greedy and beam search are deterministic; the samplers change with the seed (and give
# the same text again for the same seed).

# %%
prompt = "the dog "
print()
print(f"greedy        : {prompt}{decode(tl.generate(model, encode(prompt), 40, temperature=0))}")
print(f"beam (4)      : {prompt}{decode(tl.generate(model, encode(prompt), 40, num_beams=4))}")
for seed in [1, 2]:
    print(f"top-k 3, s{seed}   : {prompt}"
          f"{decode(tl.generate(model, encode(prompt), 40, top_k=3, seed=seed))}")
    print(f"top-p 0.8, s{seed} : {prompt}"
          f"{decode(tl.generate(model, encode(prompt), 40, top_p=0.8, seed=seed))}")
assert (tl.generate(model, encode(prompt), 40, top_p=0.8, seed=1)
        == tl.generate(model, encode(prompt), 40, top_p=0.8, seed=1))

# %% [markdown]
# ## Beam search's tree (3.3.2)
# Each step extends every beam by every token and keeps the 3 best texts by total
# log-probability. A line shows a beam and its log P(text).

# %%
history = []
beam_search(Decoder(model, encode("a bird "), 6), 6, num_beams=3, history=history)
for step, beams in enumerate(history[:4], start=1):
    print(f"\nstep {step}:")
    for ids, score in beams:
        print(f"   'a bird {decode(ids)}'   log P = {score:7.3f}")
    assert all(a[1] >= b[1] for a, b in zip(beams, beams[1:]))  # best first

# %% [markdown]
# ### Greedy can miss the best text
# The seed chapter says greedy search "easily gets stuck in a suboptimal solution". A
# two-step example: after the start token S, "A" (0.5) beats "B" (0.4), but nothing follows
# A with more than 0.25, while "C" follows B with 0.9. Greedy takes A and ends at
# 0.5 x 0.25 = 0.125; two beams find B C at 0.4 x 0.9 = 0.36.
#
# We make a real LLaMA that IS this table (a bigram model): switch its blocks off (wo = w2
# = 0, so each adds nothing to the residual stream), make the embedding one-hot, let the
# final RMSNorm weight undo its scaling, and put log P(next | token) in the output matrix.

# %%
names = ["S", "A", "B", "C", "D", "E"]
P = np.array([  # row: current token, column: next token
    [0.01, 0.50, 0.40, 0.03, 0.03, 0.03],  # after S
    [0.15, 0.25, 0.25, 0.15, 0.15, 0.05],  # after A
    [0.02, 0.02, 0.02, 0.90, 0.02, 0.02],  # after B
    [0.2] * 5 + [0.0001], [0.2] * 5 + [0.0001], [0.2] * 5 + [0.0001]])
P /= P.sum(axis=1, keepdims=True)
toy = tl.Llama(tl.LlamaConfig(vocab_size=6, dim=6, n_layers=1, n_heads=1, hidden_dim=4,
                              max_seq_len=8), dtype=np.float64)
toy.params["layers.0.attention.wo.weight"][...] = 0
toy.params["layers.0.feed_forward.w2.weight"][...] = 0
toy.params["tok_embeddings.weight"][...] = np.eye(6)
toy.params["norm.weight"][...] = np.sqrt(1 / 6 + toy.config.norm_eps)
toy.params["output.weight"][...] = np.log(P).T
greedy = tl.generate(toy, [0], 2, temperature=0)
beam = tl.generate(toy, [0], 2, num_beams=2)
print()
for label, ids in [("greedy", greedy), ("beam (2)", beam)]:
    probability = P[0, ids[0]] * P[ids[0], ids[1]]
    print(f"{label:9s}: S {' '.join(names[i] for i in ids)}   P = {probability:.3f}")
assert [names[i] for i in greedy][0] == "A" and [names[i] for i in beam] == ["B", "C"]

# %% [markdown]
# ## The KV cache: why generation is fast
# Without a cache each step runs the model over the whole text so far: step t costs t
# positions. With it, the prompt is read once and each step reads ONE new token, reusing
# every earlier position's keys and values. Same logits, far less work. (A bigger,
# random-weight model here, so the difference is easy to measure.)

# %%
big = tl.Llama(tl.LlamaConfig(vocab_size=512, dim=128, n_layers=4, n_heads=4, n_kv_heads=2,
                              max_seq_len=256), seed=0)
prompt_ids = rng.integers(0, 512, size=8).tolist()
n_new = 120
timings = {}
for use_cache in [True, False]:
    start = time.perf_counter()
    ids = tl.generate(big, prompt_ids, n_new, temperature=0, use_cache=use_cache)
    timings[use_cache] = (time.perf_counter() - start, ids)
(cached_time, cached_ids), (full_time, full_ids) = timings[True], timings[False]
print(f"\n{n_new} greedy tokens: with KV cache {cached_time:.2f} s "
      f"({n_new / cached_time:.0f} tokens/s), without {full_time:.2f} s "
      f"({n_new / full_time:.0f} tokens/s): {full_time / cached_time:.1f}x faster")
cache = tl.KVCache(big.config, batch_size=1, dtype=big.dtype)
print(f"the cache for 256 positions: {cache.nbytes() / 1024:.0f} KB "
      f"(n_kv_heads = {big.config.n_kv_heads}: grouped-query attention halves it)")
assert cached_ids == full_ids  # the cache changes the speed, never the result
assert full_time > cached_time

# %% [markdown]
# ## Decoding one token reads every weight once
# With the cache, one step multiplies ONE vector by every weight matrix: each weight is
# read from memory for a single multiply-add. Memory, not arithmetic, sets the pace
# (`tinyllama-np bench --suite decode` prints the bound). So how a matrix lies in memory
# matters. Below, the same (vocab, dim) output matrix is stored two ways: row by row
# (NumPy's default, order "C") and column by column (order "F", which is how tl.Llama
# stores its weight matrices). The numbers are the same; x @ W.T reads them in another order.

# %%
W_rows = rng.standard_normal((32000, 288)).astype(np.float32)
W_columns = np.asfortranarray(W_rows)
x = rng.standard_normal((1, 288)).astype(np.float32)
assert np.array_equal(W_rows, W_columns) and np.allclose(x @ W_rows.T, x @ W_columns.T, atol=1e-4)
for label, W in [("row by row (C)", W_rows), ("column by column (F)", W_columns)]:
    x @ W.T  # once untimed
    start = time.perf_counter()
    for _ in range(20):
        x @ W.T
    seconds = (time.perf_counter() - start) / 20
    print(f"x @ W.T, W {W.nbytes / 1e6:.0f} MB stored {label:20s}: {1e3 * seconds:.2f} ms "
          f"= {W.nbytes / seconds / 1e9:.1f} GB/s of weights read")
print("tl.Llama's weights:", "column by column" if
      big.params["output.weight"].flags.f_contiguous else "row by row")

# %% [markdown]
# ## Exercise
# 1. Min-p sampling keeps the tokens whose probability is at least min_p times the top
#    token's. Write `min_p_filter(probs, min_p)` next to top_p_filter in generation/sampling.py and
#    compare the kept sets after "the cat " and after "the cat sat on the m".
# 2. Run beam search with num_beams = 1: which strategy is that? And with more beams than
#    tokens in the vocabulary, what is it then?
# 3. Time `tl.generate(big, prompt_ids, n, temperature=0, use_cache=False)` for n = 60, 120,
#    240. Is the growth linear or quadratic, and why? Repeat with the cache.
# 4. In the timing above, W.T of the column-by-column matrix is a row-by-row (288, 32000)
#    matrix. Which of the two layouts does the (B*T, 288) @ (288, 32000) product of training
#    prefer? Time both with x of 2048 rows.
