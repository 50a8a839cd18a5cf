# %% [markdown]
# # Lesson 13: fine-tuning with LoRA, and supervised fine-tuning on answers (微调)
#
# Lesson 12 fine-tuned by freezing layers (冻结), as the seed chapter's section 3.2.2
# describes. What people fine-tune with today is LoRA, low-rank adaptation (Hu et al., 2021):
# keep EVERY pretrained weight frozen and learn a small correction beside some of them,
#
#     y = x W^T + (alpha / r) * (x A^T) B^T        A: (r, in), B: (out, r), r small
#
# and supervised fine-tuning (SFT, 监督微调) on question/answer data, where the loss counts
# only the answer's tokens. This lesson: why low rank, what it saves (our model and a 7B
# LLaMA), the gradient check of LoRA's backward, prompt masking on one example, and a short
# LoRA fine-tune on questions about stories, whose accuracy rises as you watch.
#
# Run:  python lessons/13_lora.py

# %%
import tempfile
import time
from pathlib import Path

import numpy as np

import tinyllama_np as tl
from tinyllama_np.checkpoint.tensors import param_shapes
from tinyllama_np.stories.qa import story_questions
from tinyllama_np.training.data import load_tokens, prepare_token_files
from tinyllama_np.training.finetune import FinetuneSettings, exact_match, finetune, prepare_model
from tinyllama_np.training.loop import TrainSettings, train
from tinyllama_np.training.sft import (PromptCompletionFormat, conversation_from_record,
                                       encode_conversation, make_examples, sft_targets)

ROOT = Path(__file__).resolve().parent.parent
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Why a low-rank update?
# Fine-tuning moves a pretrained model a little, in few directions. A rank-r matrix B A is
# exactly such a change: it only alters x W^T along r directions of the input (the rows of A)
# and writes into r directions of the output (the columns of B). It costs r * (in + out)
# numbers instead of in * out. Any matrix can be approximated by its best rank-r part (its
# top r singular values); if the update's singular values fall fast, a small r loses little.

# %%
full_update = rng.standard_normal((64, 4)) @ rng.standard_normal((4, 64)) \
    + 0.05 * rng.standard_normal((64, 64))  # "mostly rank 4, plus a little noise"
singular = np.linalg.svd(full_update, compute_uv=False)
for r in (1, 2, 4, 8, 16):
    kept = np.sqrt((singular[:r] ** 2).sum() / (singular ** 2).sum())
    print(f"rank {r:>2}: {r * (64 + 64):>5} numbers instead of {64 * 64}, keeps {kept:.1%} of the update's size")
assert np.sqrt((singular[:4] ** 2).sum() / (singular ** 2).sum()) > 0.99

# %% [markdown]
# ## 2. What it saves: our model and a 7B LLaMA
# Full fine-tuning with AdamW keeps, per trained number, a gradient and two moments (3 more
# float32 values). LoRA trains only A and B; the frozen W needs no gradient and no moments.
# In this code a frozen weight has literally no gradient buffer (`model.grads` lacks it).


# %%
def lora_count(config, targets, rank):
    shapes = param_shapes(config)
    total = 0
    for name, (out_features, in_features) in ((n, s) for n, s in shapes.items() if len(s) == 2):
        if name.split(".")[-2] in targets:
            total += rank * (in_features + out_features)
    return sum(int(np.prod(s)) for s in shapes.values()), total


for label, config in [("our tiny model", tl.LlamaConfig(2048, 128, 4, 4, max_seq_len=128)),
                      ("LLaMA 2 7B", tl.LlamaConfig(32000, 4096, 32, 32, hidden_dim=11008,
                                                    max_seq_len=4096))]:
    weights, adapters = lora_count(config, ("wq", "wv"), rank=8)
    print(f"\n{label}: {weights:,} weights; LoRA r=8 on wq, wv: {adapters:,} trained "
          f"({adapters / weights:.3%})")
    print(f"  full fine-tuning, float32 + AdamW: {16 * weights / 2**30:7.2f} GB (weights, "
          f"gradients, 2 moments)")
    print(f"  LoRA:                              {(4 * weights + 16 * adapters) / 2**30:7.2f} GB "
          f"(weights + adapters with theirs)")

model = tl.Llama(tl.LlamaConfig(2048, 128, 4, 4, max_seq_len=128), seed=0)
tl.apply_lora(model, targets=("wq", "wv"), rank=8, alpha=16)
print("\nafter apply_lora, model.grads holds only", len(model.grads), "tensors, e.g.",
      sorted(model.grads)[:2])
assert all(".lora_" in name for name in model.grads)

# %% [markdown]
# ## 3. The gradient check
# LoRALinear's backward (tinyllama_np/nn/lora.py), with u = x A^T:
#     dB = s dy^T u,   du = s dy B,   dA = du^T x,   dx = dy W + du A
# B starts at zero (so training starts from the base model exactly); for the check we give
# it values, or dA would be zero and prove nothing.

# %%
layer = tl.LoRALinear(rng.standard_normal((6, 5)), rank=2, alpha=4.0)
layer.params["lora_B"][...] = rng.standard_normal((6, 2))
report = tl.gradcheck(layer, rng.standard_normal((3, 4, 5)))
print("\ngradient check (worst relative error):", {k: f"{v:.1e}" for k, v in report.items()})
assert max(report.values()) < 1e-6 and "param weight" not in report  # W is frozen: no gradient

# %% [markdown]
# ## 4. Supervised fine-tuning: the loss counts the answer only
# A training example is "a story, then a question" (the prompt) and the answer (the
# completion). The target of a position is the next token if that token belongs to the
# answer (or is the end-of-text token after it), else -1, which the loss ignores: the model
# reads the prompt but is never trained to write it.

# %%
tokenizer = tl.load_tokenizer(ROOT / "data" / "tokenizer.model")
chat_format = PromptCompletionFormat()
example = story_questions(1, seed=1)[0]
messages = conversation_from_record(example, "example")
ids, is_output = encode_conversation(messages, chat_format, tokenizer)
inputs, targets = sft_targets(ids, is_output)
print("\nthe last positions of one example:")
print(f"  {'input token':>16}  {'target':>16}")
for token, target in zip(inputs[-8:], targets[-8:]):
    shown = repr(tokenizer.decode([target])) if target >= 0 else "-1 (ignored)"
    print(f"  {tokenizer.decode([token])!r:>16}  {shown:>16}")
print(f"{int((targets >= 0).sum())} of {len(targets)} positions are trained on")
assert (targets >= 0).sum() == len(tokenizer.encode(example["completion"])) + 1

# %% [markdown]
# ## 5. A short LoRA fine-tune whose accuracy rises
# The base model: the main job's (`tinyllama-np train` writes runs/tiny) if it is there,
# otherwise a small one pre-trained here in seconds on the openings of the English stories.
# The new skill: answering "Is Mia a boy or a girl?" after a story, which the base model has
# never seen asked (it just goes on telling stories). Questions about 400 new stories train
# the adapters; questions about 40 other stories measure exact-match accuracy.
# (The main job's model learns harder questions: who the story is about, which animal,
# friend or thing; see the README for that measurement.)

# %%
started = time.perf_counter()


def opening(story):
    """The first three sentences: short texts, so the small model trains in seconds."""
    return ". ".join(story.split(". ")[:3]).rstrip(".") + "."


main_job = ROOT / "runs" / "tiny" / "model.npz"
if main_job.is_file():
    base = tl.load_checkpoint(main_job)
    print(f"\nbase model: {main_job}")
    shorten = lambda story: story  # noqa: E731
else:
    stories = tl.split_stories((ROOT / "data" / "stories.txt").read_text(encoding="utf-8"))
    openings = [opening(s) for s in stories if s.isascii()][:4000]
    workdir = Path(tempfile.mkdtemp())
    paths = prepare_token_files(openings, tokenizer, workdir / "data")
    pretrain = TrainSettings(dim=64, n_layers=2, n_heads=4, seq_len=64, batch_size=32, steps=120,
                             lr=1e-2, min_lr=1e-3, warmup_steps=10, eval_interval=1000)
    base = train(pretrain, load_tokens(paths["train"], tokenizer.vocab_size),
                 load_tokens(paths["val"], tokenizer.vocab_size), tokenizer.vocab_size,
                 workdir / "pretrain", progress=False, log=lambda *args: None)
    print(f"\nno runs/tiny: pre-trained a small model here ({time.perf_counter() - started:.0f} s)")
    shorten = opening


def questions(n_stories, seed):
    found = []
    for record in story_questions(n_stories, seed, "en", kinds=("gender",)):
        story, question = record["prompt"].split("\n", 1)
        record = dict(record, prompt=shorten(story) + "\n" + question)
        found.append(conversation_from_record(record, "qa"))
    return [m for m in found if make_examples([m], chat_format, tokenizer, base.config.max_seq_len)[0]]


train_conversations, test_conversations = questions(400, seed=101), questions(40, seed=202)
print("a training example:", repr(chat_format.render_segments(train_conversations[0])))
train_examples, _ = make_examples(train_conversations, chat_format, tokenizer, base.config.max_seq_len)
val_examples, _ = make_examples(test_conversations, chat_format, tokenizer, base.config.max_seq_len)
before, answers = exact_match(base, tokenizer, chat_format, test_conversations)
print(f"before fine-tuning: {before:.0%} of {len(test_conversations)} held-out questions answered "
      f"exactly (e.g. {answers[0]!r})")
settings = FinetuneSettings(lora_rank=8, lora_alpha=16,
                            lora_targets=["wq", "wk", "wv", "wo", "w1", "w2", "w3"], steps=90,
                            batch_size=8, lr=1e-2, warmup_steps=10, eval_interval=1000,
                            checkpoint_interval=1000)
prepare_model(base, settings)
out = Path(tempfile.mkdtemp())
accuracies = [before]
for stop in (30, 60, 90):  # one run of 90 steps, stopped and resumed to look at it
    finetune(settings, base, train_examples, val_examples, out, resume=stop > 30, stop_at=stop,
             progress=False, log=lambda *args: None)
    accuracy, answers = exact_match(base, tokenizer, chat_format, test_conversations)
    accuracies.append(accuracy)
    print(f"after {stop:>3} LoRA steps: {accuracy:.0%}   (expected "
          f"{test_conversations[0][-1]['content']!r}, answered {answers[0]!r})")
print(f"({time.perf_counter() - started:.0f} s in all for this section)")
assert accuracies[-1] > accuracies[0] + 0.3, accuracies

# %% [markdown]
# Stopping and resuming (`stop_at`, `resume=True`) continues the run exactly: the three
# looks above do not change the result of the 90 steps. The command line does the whole
# job, and also writes the merged model and a PEFT adapter for Hugging Face:
#
#     tinyllama-np data qa --out qa.jsonl --stories 1500 --seed 101
#     tinyllama-np finetune --checkpoint runs/tiny --data qa.jsonl --out runs/qa
#
# ## Exercise
# 1. Fine-tune with rank 1, 2 and 16 (`lora_rank`); plot accuracy against rank. Where does it
#    stop helping?
# 2. Put the adapters on the feed-forward layers only (`lora_targets=["w1", "w2", "w3"]`).
#    Does copying a name out of the story need attention's adapters?
# 3. Remove the prompt mask (train on every token's target) and compare: what does the
#    model spend its capacity on?
