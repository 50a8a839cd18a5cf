# %% [markdown]
# # Lesson 11: BERT's objectives, MLM and NSP, versus LLaMA's CLM
#
# Seed chapter, section 3.2.1 (预训练目标, pre-training objectives):
#
# * MLM (掩码语言模型, masked language model, BERT): hide some tokens, predict them from BOTH
#   sides. 15% of the positions are chosen; of those 80% become [MASK], 10% a random token,
#   10% stay. The loss counts the chosen positions only.
# * NSP (下一句预测, next sentence prediction, BERT): given sentences A and B, did B follow A?
# * CLM (因果语言模型, causal language model, GPT and LLaMA): predict every next token from the
#   tokens before it (lesson 10).
#
# BERT is an encoder only: the encoder blocks of lesson 08, with no causal mask, so every
# position sees every other. Here we train a small one on sentence pairs from the bundled
# stories, fill in blanks with it, and see why LLaMA chose the decoder.
#
# Run:  python lessons/11_mlm_nsp.py

# %%
import os

# Small matrix products run faster on one BLAS thread (see the README's benchmark notes);
# this applies only if you have not chosen a setting yourself.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tinyllama_np as tl  # noqa: E402
from tinyllama_np.models.bert import BertConfig, MLMHead, NSPHead  # noqa: E402
from tinyllama_np.stories import split_stories  # noqa: E402
from tinyllama_np.training import mlm  # noqa: E402
from tinyllama_np.training.corpus import bundled_folder  # noqa: E402
from tinyllama_np.training.data import read_text  # noqa: E402
from tinyllama_np.training.task_loop import TaskSettings  # noqa: E402

rng = np.random.default_rng(0)
folder = bundled_folder()
tokenizer = tl.load_tokenizer(folder / "tokenizer.model")
stories = split_stories(read_text(folder / "stories.txt"))
ids = mlm.SpecialIds.after(tokenizer.vocab_size)  # [CLS] [SEP] [MASK] [PAD] after the BPE ids
print(f"{len(stories)} stories; BPE vocabulary {tokenizer.vocab_size} + 4 special tokens")

# %% [markdown]
# ## Three objectives, one sentence
# What each objective asks the model to predict, and from what.

# %%
sentence = "Mia liked to jump rope with her sister."
tokens = tokenizer.encode(sentence)
pieces = [tokenizer.decode([t]) for t in tokens]
print("\ntokens:", pieces)
print("\nCLM: at each position, the next token from the ones before it (every position counts)")
for i in range(3):
    print(f"  {''.join(pieces[:i + 1])!r:<22} -> {pieces[i + 1]!r}")
corrupted, targets, replaced = mlm.mask_tokens(np.array([tokens] * 4), np.ones((4, len(tokens)), bool),
                                               rng, ids.mask, ids.vocab_size,
                                               random_ids=np.arange(tokenizer.vocab_size))


def show(ids_row):
    return "".join("[MASK]" if t == ids.mask else tokenizer.decode([t]) for t in ids_row)


print("\nMLM: four corruptions of it (15% chosen; 80% [MASK], 10% random, 10% unchanged);"
      " predict the chosen tokens")
for row in range(4):
    chosen = [pieces[i].strip() for i in np.flatnonzero(targets[row] >= 0)]
    print(f"  {show(corrupted[row])!r:<60} predict {chosen}")

encoded = mlm.encode_stories(stories[:3000], tokenizer)
held_out = mlm.encode_stories(stories[-300:], tokenizer)
print("\nNSP: [CLS] A [SEP] B [SEP]; is B the next sentence of A's story (0) or a random one (1)?")
for a, b, label in mlm.sentence_pairs(encoded, 4, rng):
    print(f"  {label}  A: {tokenizer.decode(a)!r}\n     B: {tokenizer.decode(b)!r}")

# %% [markdown]
# ## What each position may see
# A decoder (LLaMA) uses the causal mask: position i sees 0..i. An encoder (BERT) sees
# everything: that is what lets MLM use the words on BOTH sides of a blank, and also why it
# cannot write text left to right: there is no "not yet written" in its training.

# %%
print("\ncausal (LLaMA)   bidirectional (BERT)")
for row_causal, row_full in zip(tl.causal_mask(5), np.ones((5, 5), bool)):
    print("  " + " ".join("x" if v else "." for v in row_causal) + "        "
          + " ".join("x" if v else "." for v in row_full))

# %% [markdown]
# ## The heads, and their gradient checks
# MLM head: output(LayerNorm(gelu(dense h))), the output tied to the token embedding.
# NSP head: classifier(tanh(pooler h[CLS])). Both backward passes are hand-written.

# %%
check_rng = np.random.default_rng(1)
head = MLMHead(tl.Linear(check_rng.standard_normal((6, 6))),
               tl.LayerNorm(1 + 0.2 * check_rng.standard_normal(6), 0.2 * check_rng.standard_normal(6)),
               tl.Linear(check_rng.standard_normal((11, 6))))
nsp = NSPHead(tl.Linear(check_rng.standard_normal((6, 6))), tl.Linear(check_rng.standard_normal((2, 6))))
for name, module in (("MLM head", head), ("NSP head", nsp)):
    worst = max(tl.gradcheck(module, check_rng.standard_normal((4, 6))).values())
    print(f"  {name} gradient check: worst relative error {worst:.1e}")
    assert worst < 1e-6

# %% [markdown]
# ## Pre-training a small BERT (seconds)
# Both losses at once: total = MLM + NSP. The baseline for MLM ignores the context and
# always guesses the most frequent token. 150 steps is very little: the model first learns
# which tokens are frequent, and only later how to use the context around a blank. The
# command `tinyllama-np bert` runs 1500 steps (about 3 minutes on 2 cores): there the MLM
# accuracy at [MASK] reaches about 45% against the baseline's 7%, and NSP about 78%
# (README, section "The original Transformer and BERT").

# %%
config = BertConfig(ids.vocab_size, dim=64, n_heads=4, n_layers=2, hidden_dim=256, max_seq_len=64)
settings = TaskSettings(steps=150, batch_size=32, lr=2e-3, warmup_steps=30)
model, losses, seconds = mlm.train_bert(encoded, config, settings, ids, tokenizer.vocab_size)
print(f"\n{model.num_params():,} parameters, {settings.steps} steps in {seconds:.1f} s; "
      f"loss {losses[0]:.2f} -> {np.mean(losses[-20:]):.2f}")
baseline = mlm.unigram_guess(encoded)
scores = mlm.evaluate_bert(model, held_out, ids, tokenizer.vocab_size, baseline, pairs=400)
print(f"held-out stories: MLM accuracy at [MASK] {scores['masked_accuracy']:.1%} "
      f"(always {tokenizer.decode([baseline])!r}: {scores['unigram_accuracy']:.1%}); "
      f"NSP accuracy {scores['nsp_accuracy']:.1%} (chance 50%)")
assert scores["masked_accuracy"] > scores["unigram_accuracy"]

# %% [markdown]
# ## Fill in the blank
# One [MASK] per sentence; the model's five most likely tokens. BERT reads the words after
# the blank too: "to [MASK] rope" has clues on both sides. After 150 steps expect frequent
# tokens rather than answers; run `tinyllama-np bert --fill "Mia liked to [MASK] rope."` to
# see a longer-trained model's guesses.

# %%
for text, answer in [("Mia liked to [MASK] rope.", "jump"), ("Tom went to the [MASK] with his dog.", "park"),
                     ("The cat [MASK] very happy.", "was"), ("小猫很[MASK]心。", "开")]:
    print(f"  {text!r:<40} answer {answer!r:<8} guesses {mlm.fill_in(model, tokenizer, ids, text)}")

# %% [markdown]
# ## Why LLaMA is decoder-only
# * One objective, every token: CLM turns every position of every text into a training
#   example; MLM learns from the 15% it chose. For the same text, CLM gets about 6x the
#   predictions (below).
# * Training is generation: a CLM model is trained to do exactly what it is then used for,
#   writing the next token; a bidirectional encoder has never had to write without seeing
#   the right-hand context, and it needs the text's length fixed in advance.
# * One stack, one cache: a decoder can reuse each token's keys and values (the KV cache of
#   lesson 14); an encoder must recompute everything when a token is added.
# * NSP turned out to matter little: RoBERTa dropped it. Part of it is a shortcut: here a
#   random sentence comes from another story, which usually names other characters, so
#   "same story?" can be answered by checking names (the topic), without understanding what
#   comes next (exercise 3 removes the shortcut).
# LLaMA keeps the decoder's causal self-attention and the feed-forward layer, and drops the
# encoder and cross-attention altogether.

# %%
example_tokens = sum(len(a) + len(b) + 3 for a, b, _ in mlm.sentence_pairs(encoded, 1000, rng))
print(f"\n1000 sentence pairs, {example_tokens} tokens: CLM predicts about {example_tokens}, "
      f"MLM about {int(0.15 * example_tokens)}")

# %% [markdown]
# ## Exercise
# 1. Train without NSP (set the NSP labels of every pair to IS_NEXT = 0, so the head has
#    nothing to learn) and compare the MLM accuracy. Does NSP help MLM here?
# 2. Change the 80/10/10 split in `mask_tokens` to 100% [MASK]. The model now only has to
#    fill real [MASK] tokens: what happens to the accuracy on the kept and random positions
#    (`chosen_accuracy` against `masked_accuracy`)?
# 3. Make NSP harder: draw the random sentence B from the SAME story, but not the next one.
