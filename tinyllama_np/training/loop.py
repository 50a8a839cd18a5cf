"""Pre-training: the causal language-modelling loop, checkpoints with exact resume, and
`tinyllama-np train`.

One step:
    lr = schedule(step)                                  warm-up, then cosine decay
    for each micro-batch:  loss = CE(model(x), y);  backward   (gradients add up)
    clip the global gradient norm;  AdamW update (in place)

Everything a run needs to continue is in OUT/train_state.npz, written atomically (a
temporary file, then a rename), so a crash while saving never damages the last good
checkpoint. It holds the weights, the optimizer's moments, the step, the data sampler's
random state and the settings; resuming therefore continues bit for bit as if the run had
never stopped. OUT/model.npz holds the weights alone, for `tinyllama-np generate`.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, write_text_atomically
from ..progress import progress_bar
from .data import document_bounds, random_batch
from .data_parallel import DataParallel
from ..models import Llama, LlamaConfig
from ..nn import CrossEntropyLoss
from .optim import SGD, AdamW, clip_grad_norm, learning_rate

STATE_FILE = "train_state.npz"
LOG_FILE = "log.jsonl"


@dataclass
class TrainSettings:
    """Everything that defines a run. Saved with every checkpoint."""
    # model (vocab_size comes from the tokenizer)
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = None
    hidden_dim: int = None
    tie_embeddings: bool = False
    # data
    seq_len: int = 128
    batch_size: int = 8
    grad_accum: int = 1
    # optimisation
    steps: int = 2600
    optimizer: str = "adamw"
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta2: float = 0.95
    grad_clip: float = 1.0
    freeze: list = field(default_factory=list)  # parameter-name prefixes never updated
    # bookkeeping
    seed: int = 0
    eval_interval: int = 200
    eval_batches: int = 8
    checkpoint_interval: int = 400

    def model_config(self, vocab_size):
        return LlamaConfig(vocab_size=vocab_size, dim=self.dim, n_layers=self.n_layers,
                           n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
                           hidden_dim=self.hidden_dim, max_seq_len=self.seq_len,
                           tie_embeddings=self.tie_embeddings)

    def check(self):
        for name in ("seq_len", "batch_size", "grad_accum", "steps", "eval_interval",
                     "eval_batches", "checkpoint_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip must not be negative")


PRESETS = {
    # The main job: about 3 minutes on 2 cores, on the bundled stories (2.7M tokens seen).
    # Small batches learn the stories' names faster per token than large ones. Copying the
    # story's animal, object and the object's colour back from earlier in the text is learnt
    # late, at a step that depends on the seed, and needs the windows to start at the stories
    # (train's bos_id, as `tinyllama-np train` does): with windows started anywhere, 2600
    # steps kept every entity in 100, 100, 78, 100 and 99% of the stories for seeds 0-4;
    # with windows started at the stories, in 98-100% for each of seeds 0-9 (README).
    "tiny": TrainSettings(),
    # llama2.c's stories15M shape (dim 288, 6 layers, 6 heads, hidden 768), our vocabulary.
    "dim288": TrainSettings(dim=288, n_layers=6, n_heads=6, hidden_dim=768, seq_len=256,
                            batch_size=8, steps=5000, lr=1e-3, min_lr=1e-4, warmup_steps=200,
                            eval_interval=250, checkpoint_interval=500),
}


class TrainingError(ValueError):
    """The run cannot go on (a diverged loss, an incompatible checkpoint): a clear message."""


def make_optimizer(settings, model):
    frozen = frozen_names(model.params, settings.freeze)
    if settings.optimizer == "sgd":
        return SGD(model.params, lr=settings.lr, weight_decay=settings.weight_decay, frozen=frozen)
    return AdamW(model.params, lr=settings.lr, betas=(0.9, settings.beta2),
                 weight_decay=settings.weight_decay, frozen=frozen)


def frozen_names(params, prefixes):
    """Parameters whose names start with one of `prefixes` (e.g. 'layers.0.', 'tok_embeddings')."""
    names = {name for name in params for prefix in prefixes if name.startswith(prefix)}
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in params):
            raise ValueError(f"--freeze {prefix!r} matches no parameter (names look like "
                             f"'layers.0.attention.wq.weight', 'tok_embeddings.weight')")
    if len(names) == len(params):
        raise ValueError("--freeze would freeze every parameter: nothing left to train")
    return names


# --- checkpoints ----------------------------------------------------------------------

def save_state(out_dir, model, optimizer, step, rng, settings, extra, names=None,
               state_file=STATE_FILE):
    """Write OUT/state_file atomically: the weights `names` (default: all), the optimizer,
    step, RNG and settings, and the facts in `extra`. Fine-tuning saves only its trained
    weights (finetune.py)."""
    names = model.params if names is None else names
    arrays = {f"param.{name}": model.params[name] for name in names}
    optimizer_arrays, optimizer_info = optimizer.state()
    arrays.update({f"optim.{name}": value for name, value in optimizer_arrays.items()})
    info = {"step": step, "rng": rng.bit_generator.state, "settings": asdict(settings),
            "model_config": model.config.to_dict(), "optimizer": optimizer_info, **extra}
    arrays["info"] = np.array(json.dumps(info))
    with atomic_write(Path(out_dir) / state_file) as file:
        np.savez(file, **arrays)


def load_state(out_dir, state_file=STATE_FILE, kind="training"):
    """(arrays, info) from OUT/state_file, with a clear error for anything else."""
    path = Path(out_dir) / state_file
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir} holds no {kind} checkpoint ({state_file} is missing)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        info = json.loads(str(arrays.pop("info")))
    except (ValueError, OSError, KeyError, EOFError) as error:
        raise ValueError(f"{path} is not a readable {kind} checkpoint: {error}") from None
    return arrays, info


def restore(model, optimizer, arrays, info, path, names=None):
    """Put the saved weights `names` (default: all) and the optimizer's state back."""
    if info["model_config"] != model.config.to_dict():
        raise TrainingError(f"{path} was saved from a different model configuration: "
                            f"{info['model_config']} versus {model.config.to_dict()}")
    for name in (model.params if names is None else names):
        saved = arrays.get(f"param.{name}")
        if saved is None or saved.shape != model.params[name].shape:
            raise TrainingError(f"{path}: parameter {name} is missing or has the wrong shape")
        model.params[name][...] = saved
    optimizer_arrays = {name[len("optim."):]: value for name, value in arrays.items()
                        if name.startswith("optim.")}
    optimizer.load_state(optimizer_arrays, info["optimizer"])


# --- the loop -------------------------------------------------------------------------

def evaluate(model, tokens, settings, batches, doc_bounds=None):
    """Mean loss over `batches` fixed validation batches (same ones at every evaluation)."""
    rng = np.random.default_rng(12345)
    loss_fn = CrossEntropyLoss()
    total = 0.0
    for _ in range(batches):
        x, y = random_batch(tokens, settings.batch_size, settings.seq_len, rng, doc_bounds)
        total += loss_fn.forward(model.forward(x), y, overwrite_logits=True)
    return total / batches


def train(settings, train_tokens, val_tokens, vocab_size, out_dir, resume=False, stop_at=None,
          init_from=None, progress=True, log=print, workers=1, bos_id=None):
    """Run (or continue) training; return the model. Checkpoints and the log go to out_dir.

    workers: how many threads share each batch (data_parallel.py), each with one BLAS thread;
    1 runs the model in this thread with NumPy's BLAS settings untouched.
    stop_at: stop after this step (saving a checkpoint), as if interrupted; the schedule still
    runs to settings.steps, so a later resume continues exactly.
    init_from: a Llama whose weights start the run (fine-tuning).
    bos_id: when given, windows start at documents (data.random_batch), not anywhere.
    """
    settings.check()
    for split, tokens in (("training", train_tokens), ("validation", val_tokens)):
        if len(tokens) < settings.seq_len + 1:
            raise ValueError(f"the {split} data has {len(tokens)} tokens, fewer than one sequence "
                             f"of {settings.seq_len} + 1: use a shorter --seq-len or more data")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = settings.model_config(vocab_size)
    model = Llama(config, seed=settings.seed, dtype=np.float32)
    if init_from is not None:
        if init_from.config.to_dict() != config.to_dict():
            raise TrainingError(f"the initial checkpoint's configuration {init_from.config} does "
                                f"not match this run's {config}")
        for name, param in model.params.items():
            param[...] = init_from.params[name]
    optimizer = make_optimizer(settings, model)
    model.freeze(optimizer.frozen)  # --freeze: no gradient buffers for those (Module.freeze)
    trainable = [name for name in model.params if name not in optimizer.frozen]
    rng = np.random.default_rng(settings.seed)
    start_step = 0
    if resume:
        arrays, info = load_state(out_dir)
        restore(model, optimizer, arrays, info, out_dir / STATE_FILE)
        start_step = info["step"]
        rng.bit_generator.state = info["rng"]
        forget_log_after(out_dir, start_step)
        log(f"resuming {out_dir} at step {start_step} of {settings.steps}")
    last_step = settings.steps if stop_at is None else min(stop_at, settings.steps)
    train_bounds = val_bounds = None
    if bos_id is not None:
        train_bounds, val_bounds = document_bounds(train_tokens, bos_id), document_bounds(val_tokens, bos_id)
    parallel = DataParallel(model, workers)
    tokens_per_step = settings.batch_size * settings.seq_len * settings.grad_accum
    bar = progress_bar(last_step, initial=start_step, unit="steps", enabled=progress)
    step, last_saved = start_step, start_step
    try:
        with open(out_dir / LOG_FILE, "a", encoding="utf-8") as log_file:
            while step < last_step:
                started = time.perf_counter()
                lr = learning_rate(step, settings.lr, settings.warmup_steps, settings.steps, settings.min_lr)
                model.zero_grad()
                loss = 0.0
                for _ in range(settings.grad_accum):
                    x, y = random_batch(train_tokens, settings.batch_size, settings.seq_len, rng,
                                        train_bounds)
                    loss += parallel.loss_and_backward(x, y, 1.0 / settings.grad_accum) / settings.grad_accum
                grad_norm = clip_grad_norm(model.grads, settings.grad_clip, trainable)
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    what = "loss" if not math.isfinite(loss) else "gradient norm"
                    value = loss if what == "loss" else grad_norm
                    raise TrainingError(
                        f"the {what} became {value} at step {step + 1}: stopping before the "
                        f"update. The last good checkpoint (step {last_saved}) is in {out_dir}; "
                        f"try a lower --lr.")
                optimizer.step(model.grads, lr, map=parallel.map)
                step += 1
                record = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                          "tokens_per_s": tokens_per_step / (time.perf_counter() - started)}
                if step % settings.eval_interval == 0 or step == settings.steps:
                    record["val_loss"] = evaluate(model, val_tokens, settings, settings.eval_batches,
                                                  val_bounds)
                log_file.write(json.dumps(record) + "\n")
                if step % settings.checkpoint_interval == 0 or step == last_step:
                    log_file.flush()
                    save_state(out_dir, model, optimizer, step, rng, settings, {"vocab_size": vocab_size})
                    last_saved = step
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}",
                                    tok_s=f"{record['tokens_per_s']:.0f}",
                                    **({"val": f"{record['val_loss']:.3f}"} if "val_loss" in record else {}))
    except KeyboardInterrupt:
        if step > last_saved:
            save_state(out_dir, model, optimizer, step, rng, settings, {"vocab_size": vocab_size})
        log(f"\ninterrupted: checkpoint at step {step} saved in {out_dir}; continue with --resume {out_dir}")
        raise
    finally:
        if bar is not None:
            bar.close()
    return model


def forget_log_after(out_dir, step):
    """Drop log records of steps after `step` (written after the checkpoint we resume from)."""
    kept = [record for record in read_log(out_dir) if record["step"] <= step]
    write_text_atomically(Path(out_dir) / LOG_FILE, "".join(json.dumps(r) + "\n" for r in kept))


def read_log(out_dir):
    path = Path(out_dir) / LOG_FILE
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def settings_from_dict(values):
    known = {f.name for f in fields(TrainSettings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown training settings: {sorted(unknown)}")
    return TrainSettings(**values)
