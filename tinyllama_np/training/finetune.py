"""Fine-tuning a loaded model on conversations: LoRA, full, or with frozen layers.

    model = tl.load_checkpoint(path)                    any format load_checkpoint reads
    prepare_model(model, settings)                      LoRA adapters / frozen prefixes
    finetune(settings, model, train_examples, val_examples, out_dir)

The loop is pre-training's (loop.py) with other batches: a step draws `batch_size`
conversations, pads them (sft.pad_batch), and the loss counts the answers' tokens only.
The same machinery: warm-up + cosine schedule, clipping, AdamW over the trainable tensors
only (a frozen weight has no gradient buffer and no moments), a NaN guard before the
update, validation loss on held-out conversations, log.jsonl, and OUT/finetune_state.npz
(trainable tensors, optimizer, step, RNG, settings), written atomically, from which a
stopped run resumes bit for bit.
"""

import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..generation import generate
from ..nn import CrossEntropyLoss
from ..progress import progress_bar
from . import loop
from .loop import LOG_FILE, TrainingError, forget_log_after, frozen_names
from .lora import apply_lora, set_lora_training
from .optim import AdamW, clip_grad_norm, learning_rate
from .sft import encode_conversation, pad_batch

STATE_FILE = "finetune_state.npz"
METHODS = ("lora", "full", "freeze")


@dataclass
class FinetuneSettings:
    method: str = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: list = field(default_factory=lambda: ["wq", "wv"])
    lora_dropout: float = 0.0
    freeze: list = field(default_factory=list)  # method "freeze": parameter-name prefixes
    overflow: str = "refuse"                     # or "truncate" (sft.make_examples)
    batch_size: int = 8
    steps: int = 600
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    beta2: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    eval_interval: int = 50
    checkpoint_interval: int = 100

    def check(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "freeze" and not self.freeze:
            raise ValueError("--freeze needs at least one parameter-name prefix")
        for name in ("batch_size", "steps", "eval_interval", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip must not be negative")


def prepare_model(model, settings):
    """Make `model` ready for `settings.method`: LoRA adapters (base frozen), some prefixes
    frozen, or everything trainable. Returns the names of the trainable tensors."""
    if settings.method == "lora":
        apply_lora(model, settings.lora_targets, settings.lora_rank, settings.lora_alpha,
                   settings.lora_dropout, seed=settings.seed)
    elif settings.method == "freeze":
        model.freeze(sorted(frozen_names(model.params, settings.freeze)))
    return list(model.grads)


def batch_loss(model, examples, loss_fn):
    tokens, targets, mask = pad_batch(examples)
    answers = np.nonzero(targets >= 0)  # the loss needs the logits of these positions only
    logits = model.forward(tokens, attention_mask=mask, positions=answers)
    return loss_fn.forward(logits, targets[answers])


def evaluate(model, examples, batch_size):
    """Mean loss per answer token over every held-out example (dropout off)."""
    set_lora_training(model, False)
    loss_fn = CrossEntropyLoss()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        answer_tokens = sum(int((targets >= 0).sum()) for _, targets in chunk)
        total += batch_loss(model, chunk, loss_fn) * answer_tokens
        count += answer_tokens
    set_lora_training(model, True)
    return total / max(count, 1)


def save_state(out_dir, model, optimizer, step, rng, settings, extra):
    """finetune_state.npz: only the trained weights (model.grads), the optimizer and the rest."""
    loop.save_state(out_dir, model, optimizer, step, rng, settings, extra, names=list(model.grads),
                    state_file=STATE_FILE)


def load_state(out_dir):
    return loop.load_state(out_dir, STATE_FILE, kind="fine-tuning")


def finetune(settings, model, train_examples, val_examples, out_dir, resume=False, stop_at=None,
             extra_state=None, progress=True, log=print):
    """Train the prepared `model` (prepare_model) on (inputs, targets) examples; returns it."""
    settings.check()
    if not train_examples or not val_examples:
        raise ValueError("fine-tuning needs training and validation conversations that fit "
                         "the context (none are left)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainable = list(model.grads)
    optimizer = AdamW(model.params, lr=settings.lr, betas=(0.9, settings.beta2),
                      weight_decay=settings.weight_decay, frozen=set(model.params) - set(trainable))
    rng = np.random.default_rng(settings.seed)
    step = 0
    if resume:
        arrays, info = load_state(out_dir)
        loop.restore(model, optimizer, arrays, info, out_dir / STATE_FILE, names=trainable)
        step = info["step"]
        rng.bit_generator.state = info["rng"]
        forget_log_after(out_dir, step)
        log(f"resuming {out_dir} at step {step} of {settings.steps}")
    last_step = settings.steps if stop_at is None else min(stop_at, settings.steps)
    loss_fn = CrossEntropyLoss()
    bar = progress_bar(last_step, initial=step, unit="steps", enabled=progress)
    last_saved = step
    try:
        with open(out_dir / LOG_FILE, "a", encoding="utf-8") as log_file:
            while step < last_step:
                started = time.perf_counter()
                lr = learning_rate(step, settings.lr, settings.warmup_steps, settings.steps, settings.min_lr)
                picked = rng.choice(len(train_examples), settings.batch_size,
                                    replace=len(train_examples) < settings.batch_size)
                batch = [train_examples[i] for i in picked]
                model.zero_grad()
                loss = batch_loss(model, batch, loss_fn)
                model.backward(loss_fn.backward(1.0))
                grad_norm = clip_grad_norm(model.grads, settings.grad_clip, trainable)
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    what = "loss" if not math.isfinite(loss) else "gradient norm"
                    raise TrainingError(
                        f"the {what} became {loss if what == 'loss' else grad_norm} at step "
                        f"{step + 1}: stopping before the update. The last good checkpoint "
                        f"(step {last_saved}) is in {out_dir}; try a lower --lr.")
                optimizer.step(model.grads, lr)
                step += 1
                tokens = sum(len(inputs) for inputs, _ in batch)
                record = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                          "tokens_per_s": tokens / (time.perf_counter() - started)}
                if step % settings.eval_interval == 0 or step == settings.steps:
                    record["val_loss"] = evaluate(model, val_examples, settings.batch_size)
                log_file.write(json.dumps(record) + "\n")
                if step % settings.checkpoint_interval == 0 or step == last_step:
                    log_file.flush()
                    save_state(out_dir, model, optimizer, step, rng, settings, extra_state or {})
                    last_saved = step
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}",
                                    **({"val": f"{record['val_loss']:.3f}"} if "val_loss" in record else {}))
    except KeyboardInterrupt:
        if step > last_saved:
            save_state(out_dir, model, optimizer, step, rng, settings, extra_state or {})
        log(f"\ninterrupted: checkpoint at step {step} saved in {out_dir}; continue with --resume {out_dir}")
        raise
    finally:
        if bar is not None:
            bar.close()
    set_lora_training(model, False)
    return model


def settings_from_dict(values):
    known = {f.name for f in fields(FinetuneSettings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown fine-tuning settings: {sorted(unknown)}")
    return FinetuneSettings(**values)


# --- answers ------------------------------------------------------------------------------

def answer(model, tokenizer, chat_format, messages, max_new_tokens=16):
    """The model's greedy answer to a conversation that ends before the assistant's turn."""
    ids, _ = encode_conversation(messages, chat_format, tokenizer, add_generation_prompt=True)
    room = model.config.max_seq_len - len(ids)
    if room < 1:
        raise ValueError(f"the prompt has {len(ids)} tokens: no room left in the context of "
                         f"{model.config.max_seq_len}")
    stop = chat_format.stop_id(tokenizer)
    new = generate(model, ids.tolist(), min(max_new_tokens, room), temperature=0, eos_id=stop)
    return tokenizer.decode([t for t in new if t != stop])


def exact_match(model, tokenizer, chat_format, conversations, max_new_tokens=16):
    """(accuracy, answers): the share of conversations whose last assistant message the model
    reproduces exactly (surrounding spaces ignored) from the messages before it."""
    answers, correct = [], 0
    for messages in conversations:
        expected = messages[-1]["content"]
        got = answer(model, tokenizer, chat_format, messages[:-1], max_new_tokens)
        answers.append(got)
        correct += got.strip() == expected.strip()
    return correct / max(len(conversations), 1), answers
