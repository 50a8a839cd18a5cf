# %% [markdown]
# # Lesson 10: pre-training (预训练)
#
# Seed chapter, section 3.2.1 lists three pre-training objectives:
#
# * 掩码语言模型 (MLM, BERT): hide ~15% of the tokens and predict them from BOTH sides. Needs
#   attention without the causal mask, so it trains encoders, not text generators.
# * 下一句预测 (NSP, BERT): a yes/no classifier, "does sentence B follow sentence A?". Later
#   work (RoBERTa) found it unnecessary.
# * 因果语言模型 (CLM, GPT and LLaMA): predict every next token from the tokens before it.
#   This is the only objective LLaMA uses: every position of every text is a training example.
#
# This lesson: the CLM targets, one AdamW step by hand, the learning-rate schedule, the
# "overfit one batch" sanity check, and a real (short) pre-training run on the bundled stories.
#
# Run:  python lessons/10_pretraining.py

# %%
import tempfile
import time
from pathlib import Path

import numpy as np

import tinyllama_np as tl
from tinyllama_np.training.data import document_bounds, load_tokens, prepare_token_files, random_batch
from tinyllama_np.training.optim import AdamW, learning_rate
from tinyllama_np.plot import line_chart
from tinyllama_np.training.loop import TrainSettings, read_log, train

DATA = Path(__file__).resolve().parent.parent / "data"
tokenizer = tl.load_tokenizer(DATA / "tokenizer.model")
stories = tl.split_stories((DATA / "stories.txt").read_text(encoding="utf-8"))
rng = np.random.default_rng(0)

# %% [markdown]
# ## The causal LM objective: targets are the inputs shifted by one

# %%
ids = [tokenizer.bos_id] + tokenizer.encode(stories[0])[:9]
inputs, targets = ids[:-1], ids[1:]
print("position  input token        ->  target (the next token)")
for position, (i, t) in enumerate(zip(inputs, targets)):
    print(f"{position:8d}  {tokenizer.decode([i])!r:18s} ->  {tokenizer.decode([t])!r}")
# The causal mask (lesson 04) makes all of these predictions in ONE forward pass, each
# position seeing only its past; the loss is the mean cross-entropy over all of them.

# %% [markdown]
# ## One AdamW step, by hand
# For one weight w with gradient g, after t steps (lesson: tinyllama_np/training/optim.py):
#   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
#   w -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * w )

# %%
params = {"w": np.array([[0.5, -1.0]])}
optimizer = AdamW(params, lr=0.1, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
g = np.array([[0.2, -3.0]])
w, m, v = params["w"].copy(), 0.1 * g, 0.05 * g * g
by_hand = w - 0.1 * ((m / 0.1) / (np.sqrt(v / 0.05) + 1e-8) + 0.1 * w)
optimizer.step({"w": g})
print("\nweights before:", w[0], " gradient:", g[0])
print("by hand:       ", by_hand[0])
print("optim.AdamW:   ", params["w"][0])
assert np.allclose(by_hand, params["w"])
# Note the first step moves BOTH weights by about lr, although their gradients differ 15x:
# Adam divides by the gradient's own running size. Its step size is set by lr, not by |g|.

# %% [markdown]
# ## Warm-up, then cosine decay
# Early steps use a small, rising learning rate (Adam's statistics are still poor); then it
# decays along a half cosine to a floor.

# %%
schedule = [learning_rate(step, 3e-3, 50, 1000, 3e-4) for step in range(1000)]
print("\n" + line_chart(schedule, height=8, label="learning rate"))

# %% [markdown]
# ## Sanity check: a model must be able to memorise one batch
# If the loss on a single repeated batch does not go to ~0, something is broken (data, loss,
# backward or optimizer) and a long run would be wasted.

# %%
config = tl.LlamaConfig(vocab_size=tokenizer.vocab_size, dim=64, n_layers=2, n_heads=4, max_seq_len=32)
model = tl.Llama(config, seed=0)
batch = np.array([ids[:1] + tokenizer.encode(story)[:32] for story in stories[:4]])
x, y = batch[:, :-1], batch[:, 1:]
optimizer = AdamW(model.params, lr=1e-2, weight_decay=0.0)
losses = []
for step in range(150):
    loss, grads = model.loss_and_grads(x, y)
    optimizer.step(grads)
    losses.append(loss)
print(f"\noverfitting one batch: loss {losses[0]:.2f} -> {losses[-1]:.3f}")
assert losses[-1] < 0.1

# %% [markdown]
# ## Data parallelism: one batch, two workers, the same gradient
# The loss is a mean over the batch, so its gradient is a (weighted) mean of the gradients of
# the batch's parts. Two copies of the model that share the weights can each take half of
# the rows, at the same time on two cores, and their gradients are added before the update:
#   grad = (n_a / n) grad_a + (n_b / n) grad_b       (n_a, n_b counted targets in each half)
# This is how training runs on many GPUs; here the "devices" are threads
# (tinyllama_np/training/data_parallel.py). `tinyllama-np train` uses one worker per core.

# %%
from tinyllama_np.training.data_parallel import DataParallel, replicate

model.zero_grad()
loss, grads = model.loss_and_grads(x, y)
one_worker = {name: grad.copy() for name, grad in grads.items()}
half_a, half_b = model, replicate(model)  # the replica shares every weight array...
assert half_a.params["norm.weight"] is half_b.params["norm.weight"]
assert half_a.grads["norm.weight"] is not half_b.grads["norm.weight"]  # ...not the gradients
loss_a, grads_a = half_a.loss_and_grads(x[:2], y[:2])
loss_b, grads_b = half_b.loss_and_grads(x[2:], y[2:])
largest_difference = max(np.abs(0.5 * grads_a[name] + 0.5 * grads_b[name] - one_worker[name]).max()
                         for name in one_worker)
print(f"\nmean of the two halves' gradients vs the whole batch's: largest difference "
      f"{largest_difference:.1e} (float32 rounding)")
assert largest_difference < 1e-5
model.zero_grad()
parallel_loss = DataParallel(model, workers=2).loss_and_backward(x, y)  # the same, in threads
print(f"loss of the whole batch {loss:.5f}; the two halves in two threads {parallel_loss:.5f}")
assert abs(parallel_loss - loss) < 1e-5

# %% [markdown]
# ## A real run on the bundled stories
# About 15 seconds: tokenise the corpus once into memory-mapped token files, then train a
# small model with AdamW, warm-up and cosine decay, gradient clipping, and a validation loss.
# (`tinyllama-np train` runs the same loop, longer, with a progress bar and checkpoints.)

# %%
workdir = Path(tempfile.mkdtemp())
paths = prepare_token_files(stories[:3000], tokenizer, workdir / "data")
train_tokens = load_tokens(paths["train"], tokenizer.vocab_size)
val_tokens = load_tokens(paths["val"], tokenizer.vocab_size)

# Where a window starts matters. Started anywhere, many windows begin in the middle of a story,
# after the sentence that named its hero, animal and the object's colour, and the model can
# only guess those; started at the documents (each BOS), every window reads a story from its
# first sentence, and a later "the red kite" can be copied from what the window holds.
begins_with_bos = {}
for where, doc_bounds in (("anywhere", None),
                          ("at documents", document_bounds(train_tokens, tokenizer.bos_id))):
    windows, _ = random_batch(train_tokens, 1000, 128, np.random.default_rng(0), doc_bounds)
    begins_with_bos[where] = np.mean(windows[:, 0] == tokenizer.bos_id)
    print(f"1000 windows of 128 tokens started {where}: {begins_with_bos[where]:.0%} begin with BOS")
assert begins_with_bos["at documents"] > 0.95 > 0.1 > begins_with_bos["anywhere"]

settings = TrainSettings(dim=64, n_layers=2, n_heads=4, seq_len=64, batch_size=16, steps=250,
                         lr=5e-3, min_lr=5e-4, warmup_steps=20, eval_interval=50, eval_batches=4)
start = time.perf_counter()
model = train(settings, train_tokens, val_tokens, tokenizer.vocab_size, workdir / "run",
              progress=False, log=lambda *args: None, bos_id=tokenizer.bos_id)
log = read_log(workdir / "run")
print(f"\n{settings.steps} steps of {settings.batch_size} x {settings.seq_len} tokens "
      f"in {time.perf_counter() - start:.1f} s")
print(line_chart([r["loss"] for r in log], height=8,
                 marks={i: r["val_loss"] for i, r in enumerate(log) if "val_loss" in r}))
assert log[-1]["loss"] < log[0]["loss"] - 3

story = tl.generate(model, [tokenizer.bos_id], 60, temperature=0.7, seed=0, eos_id=tokenizer.eos_id)
print("\nthe model, after 15 seconds of pre-training:\n ", tokenizer.decode(story))

# %% [markdown]
# ## Exercise
# 1. Set warmup_steps=0 and lr=3e-2 in the run above. Does it still train? Then try
#    `optimizer="sgd"` with the same learning rate as AdamW: why does SGD need a very
#    different one?
# 2. The corpus mixes English and Chinese. Train on English stories only and compare the
#    validation loss on Chinese stories before and after: what does a model learn of a
#    language it never saw?
