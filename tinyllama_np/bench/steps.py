"""The `model` and `train` suites of `tinyllama-np bench`: one forward+backward (or a whole
training step with clipping and AdamW) timed here and, when torch is installed, the same step
of the same model in PyTorch eager mode, in alternation, so both see the same machine.
"""

import os
import statistics
import time
import tracemalloc

import numpy as np

from ..models import Llama, LlamaConfig
from ..training.data_parallel import DataParallel
from ..training.optim import AdamW, clip_grad_norm

PAUSE_BETWEEN_LIBRARIES = 0.3  # seconds
BURST = 3  # steps timed together, back to back

# name -> (config, batch size, sequence length)
BENCH_CONFIGS = {
    "small": (LlamaConfig(vocab_size=512, dim=64, n_layers=4, n_heads=4, n_kv_heads=2,
                          max_seq_len=128), 8, 128),
    # the main job's model (`tinyllama-np train`, preset tiny)
    "tiny": (LlamaConfig(vocab_size=2048, dim=128, n_layers=4, n_heads=4, max_seq_len=128), 8, 128),
    "dim288": (LlamaConfig(vocab_size=4096, dim=288, n_layers=6, n_heads=6, hidden_dim=768,
                           max_seq_len=256), 8, 256),
}


def training_flops_per_token(config, seq_len):
    """Matrix-product FLOPs of one forward+backward, per token.

    Each weight is used in one multiply-add per token forward (2 FLOPs) and two backward
    (input and weight gradients): 6 FLOPs per weight. Attention adds q.k and p.v over the
    whole (seq_len x seq_len) score matrix: 2 * 2 * seq_len * dim per layer, times 3.
    The embedding lookup is a copy, not a product.
    """
    c = config
    per_layer = (c.dim * c.n_heads * c.head_dim * 2 + c.dim * c.n_kv_heads * c.head_dim * 2
                 + 3 * c.dim * c.hidden_dim)
    weights = c.n_layers * per_layer + c.vocab_size * c.dim
    return 6 * weights + 12 * c.n_layers * seq_len * c.dim


def measure_matmul_peak(size=1024, repeats=5, dtype=np.float32):
    """FLOP/s of a square float32 matrix product: this machine's practical ceiling."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def peak_step_memory(step):
    """Bytes allocated at the peak of one call to step(), beyond what existed before."""
    tracemalloc.start()
    try:
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def thread_settings():
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    settings = {name: os.environ[name] for name in names if name in os.environ}
    return settings or {"threads": f"library defaults ({os.cpu_count()} cores)"}


# The training step measured by the "train" suite, the same in both libraries.
LEARNING_RATE, GRAD_CLIP = 1e-4, 1.0


def our_step_function(model, tokens, targets, with_optimizer, workers=1):
    parallel = DataParallel(model, workers)

    def loss_and_grads():
        model.zero_grad()
        parallel.loss_and_backward(tokens, targets)
    if not with_optimizer:
        return loss_and_grads
    optimizer = AdamW(model.params, lr=LEARNING_RATE)

    def step():
        loss_and_grads()
        clip_grad_norm(model.grads, GRAD_CLIP)
        optimizer.step(model.grads, map=parallel.map)
    return step


def torch_step_function(model, tokens, targets, with_optimizer):
    """The same step of the same model in PyTorch, or (None, None) without torch."""
    try:
        import torch

        from .reference_torch import TorchLlama
    except ImportError:
        return None, None
    reference = TorchLlama(model.config, model.params, dtype=torch.float32)
    tokens_t, targets_t = torch.tensor(tokens), torch.tensor(targets)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.95),
                                  weight_decay=0.1)

    def step():
        reference.zero_grad(set_to_none=True)
        reference.loss(tokens_t, targets_t).backward()
        if with_optimizer:
            torch.nn.utils.clip_grad_norm_(reference.parameters(), GRAD_CLIP)
            optimizer.step()
    return step, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


SUITES = {"model": "forward+backward", "train": "training step (forward, backward, clip, AdamW)",
          "decode": "generation, batch 1"}


def bench_step(name, suite, steps, use_torch, workers=1, out=print):
    """Times one worker (NumPy's BLAS threads as they are), `workers` data-parallel workers
    (one BLAS thread each) if more than one, and PyTorch, in alternation."""
    config, batch, seq_len = BENCH_CONFIGS[name]
    model = Llama(config, seed=0, dtype=np.float32)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.vocab_size, size=(batch, seq_len))
    targets = rng.integers(0, config.vocab_size, size=(batch, seq_len))
    with_optimizer = suite == "train"
    runs = {"1 worker": our_step_function(model, tokens, targets, with_optimizer)}
    if workers > 1:
        runs[f"{workers} workers"] = our_step_function(model, tokens, targets, with_optimizer, workers)
    theirs, torch_info = (torch_step_function(model, tokens, targets, with_optimizer)
                          if use_torch else (None, None))
    if theirs:
        runs["PyTorch"] = theirs
    times = {label: [] for label in runs}
    for step in runs.values():
        step()  # warm-up: first touches of memory, BLAS start-up
    for _ in range(steps):  # alternate, so all see the same machine conditions
        for label, step in runs.items():
            # Both libraries' worker threads keep spinning for a moment after their work is
            # done; without a pause they steal the cores from the next run. After the pause,
            # one untimed step wakes the threads again, then a burst of steps is timed, as
            # they run back to back in a training loop.
            time.sleep(PAUSE_BETWEEN_LIBRARIES)
            step()
            times[label].append(_timed(lambda: [step() for _ in range(BURST)]) / BURST)
    tokens_per_step = batch * seq_len
    rates = {label: tokens_per_step / statistics.median(t) for label, t in times.items()}
    fastest_ours = max((label for label in rates if label != "PyTorch"), key=rates.get)
    peak = peak_step_memory(runs[fastest_ours])
    copies = 1 if fastest_ours == "1 worker" else workers  # each worker has its own gradients
    params_mb = sum(p.nbytes for p in model.params.values()) / 2 ** 20
    out(f"[{name}] dim {config.dim}, {config.n_layers} layers, {config.n_heads} heads "
        f"({config.n_kv_heads} kv), hidden {config.hidden_dim}, vocab {config.vocab_size}, "
        f"batch {batch} x seq {seq_len}, float32, {model.num_params() / 1e6:.2f}M params, "
        f"{SUITES[suite]}, median of {steps} bursts of {BURST} steps")
    for label, rate in rates.items():
        what = (f"PyTorch eager ({torch_info})" if label == "PyTorch" else
                "tinyllama_np, 1 worker (BLAS threads as set)" if label == "1 worker" else
                f"tinyllama_np, {label} (data parallel, 1 BLAS thread each)")
        out(f"  {what}: {rate:.0f} tokens/s  (best {tokens_per_step / min(times[label]):.0f})")
    if theirs:
        for label in rates:
            if label != "PyTorch":
                out(f"  ratio tinyllama_np {label} / PyTorch: {rates[label] / rates['PyTorch']:.2f}")
    out(f"  peak memory of one step ({fastest_ours}): {peak / 2 ** 20:.0f} MB of arrays "
        f"(+ {params_mb:.0f} MB parameters, {params_mb * copies:.0f} MB gradients"
        + (f", {2 * params_mb:.0f} MB AdamW moments)" if with_optimizer else ")"))
    result = {"config": name, "tokens_per_s": rates[fastest_ours], "peak_step_bytes": peak,
              "flops_per_token": training_flops_per_token(config, seq_len)}
    if theirs:
        result["torch_tokens_per_s"] = rates["PyTorch"]
    return result
