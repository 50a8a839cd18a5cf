# %% [markdown]
# # Lesson 12: fine-tuning by freezing layers (微调)
#
# Seed chapter, section 3.2.2: after pre-training, a model is adapted to a new task or domain
# with a smaller data set; often most layers are "frozen" (冻结) and only the last ones are
# updated, keeping what pre-training learned and costing less.
#
# Here: pre-train a small model on mostly English stories (with a few Chinese ones), then
# fine-tune it on a small set of CHINESE stories three ways and compare, on held-out Chinese
# and English text:
#   (a) frozen: only the last block, the final norm and the output layer are trained;
#   (b) full: every parameter is trained;
#   (c) from scratch: a fresh model trained on the Chinese set only, for the same steps.
#
# Run:  python lessons/12_finetuning.py

# %%
import tempfile
from pathlib import Path

import numpy as np

import tinyllama_np as tl
from tinyllama_np.training.data import load_tokens, prepare_token_files
from tinyllama_np.training.loop import TrainSettings, evaluate, frozen_names, train

DATA = Path(__file__).resolve().parent.parent / "data"
tokenizer = tl.load_tokenizer(DATA / "tokenizer.model")
stories = tl.split_stories((DATA / "stories.txt").read_text(encoding="utf-8"))
english = [s for s in stories if s.isascii()][:1500]
chinese = [s for s in stories if not s.isascii()]
general = english + chinese[:60]  # the pre-training mix: 4% Chinese
rng = np.random.default_rng(0)
rng.shuffle(general)
chinese = chinese[60:360]  # the fine-tuning set: 300 other Chinese stories
workdir = Path(tempfile.mkdtemp())


def token_files(documents, name):
    paths = prepare_token_files(documents, tokenizer, workdir / name)
    return (load_tokens(paths["train"], tokenizer.vocab_size),
            load_tokens(paths["val"], tokenizer.vocab_size))


general_train, _ = token_files(general, "general")
_, en_val = token_files(english, "en")
zh_train, zh_val = token_files(chinese, "zh")
base = dict(dim=64, n_layers=3, n_heads=4, seq_len=64, batch_size=8, eval_interval=1000,
            eval_batches=4, warmup_steps=10)


def run(name, steps, train_tokens, val_tokens, init_from=None, freeze=()):
    settings = TrainSettings(**base, steps=steps, lr=4e-3, min_lr=4e-4, freeze=list(freeze))
    model = train(settings, train_tokens, val_tokens, tokenizer.vocab_size, workdir / name,
                  init_from=init_from, progress=False, log=lambda *args: None)
    return model, settings


# %% [markdown]
# ## Pre-train on the general mix

# %%
pretrained, settings = run("pretrain", 300, general_train, en_val)
print(f"pre-trained: English validation loss {evaluate(pretrained, en_val, settings, 4):.2f}, "
      f"Chinese {evaluate(pretrained, zh_val, settings, 4):.2f} (it saw little Chinese)")

# %% [markdown]
# ## Freeze all but the top, and fine-tune on Chinese
# `freeze` takes parameter-name prefixes: the embeddings and blocks 0 and 1 stay fixed.
# (From the command line: tinyllama-np train --init-from DIR --freeze tok_embeddings layers.0. ...)

# %%
freeze = ["tok_embeddings", "layers.0.", "layers.1."]
frozen = frozen_names(pretrained.params, freeze)
trainable = sum(p.size for name, p in pretrained.params.items() if name not in frozen)
print(f"\nfrozen: {len(frozen)} tensors; trainable: {trainable:,} of {pretrained.num_params():,} "
      f"parameters ({trainable / pretrained.num_params():.0%})")

results = {}
for name, init, frozen_prefixes in [("(a) frozen, fine-tuned", pretrained, freeze),
                                    ("(b) full fine-tuning", pretrained, ()),
                                    ("(c) from scratch", None, ())]:
    model, settings = run(name.split()[0].strip("()"), 100, zh_train, zh_val, init, frozen_prefixes)
    results[name] = (evaluate(model, zh_val, settings, 4), evaluate(model, en_val, settings, 4))
    if frozen_prefixes:
        unchanged = all(np.array_equal(model.params[n], pretrained.params[n]) for n in frozen)
        assert unchanged, "a frozen parameter moved"

print("\nafter 100 steps on Chinese       Chinese val loss   English val loss")
for name, (zh, en) in results.items():
    print(f"  {name:28s} {zh:10.2f} {en:18.2f}")
assert results["(b) full fine-tuning"][0] < results["(c) from scratch"][0]
assert results["(a) frozen, fine-tuned"][1] < results["(b) full fine-tuning"][1]

# %% [markdown]
# Read the table: full fine-tuning from the pre-trained model beats training from scratch with
# the same budget: the model already knows how stories go. Freezing trains under half the
# parameters and adapts less in 100 steps, but it forgets far less English; full fine-tuning
# overwrites much of it ("catastrophic forgetting", 灾难性遗忘).
#
# ## Exercise
# 1. Freeze only the embeddings (`freeze = ["tok_embeddings"]`). Where does it land between (a)
#    and (b)?
# 2. Mix 10% English stories into the fine-tuning data. Does English survive better?
