"""`tinyllama-np bench`: how fast is the model here, and how does it compare with PyTorch?

    tinyllama-np bench                 forward+backward tokens/s and peak memory
    tinyllama-np bench --steps 10      more timed steps (the median is reported)
    tinyllama-np bench --decode        generation tokens/s, with and without the KV cache

When torch is installed (`pip install torch==2.13.0`; never a dependency), the same model
with the same weights runs in PyTorch eager mode too, in alternating steps back to back,
and the ratio is printed. Thread counts are reported, never changed: set
OPENBLAS_NUM_THREADS / torch's threads yourself to compare other settings.
"""

import os
import statistics
import time
import tracemalloc

import numpy as np

from . import bench_decode
from .model import Llama, LlamaConfig

# name -> (config, batch size, sequence length)
BENCH_CONFIGS = {
    "small": (LlamaConfig(vocab_size=512, dim=64, n_layers=4, n_heads=4, n_kv_heads=2,
                          max_seq_len=128), 8, 128),
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


def torch_step_function(model, tokens, targets):
    """A forward+backward step of the same model in PyTorch, or None without torch."""
    try:
        import torch

        from .reference_torch import TorchLlama
    except ImportError:
        return None, None
    reference = TorchLlama(model.config, model.params, dtype=torch.float32)
    tokens_t, targets_t = torch.tensor(tokens), torch.tensor(targets)

    def step():
        reference.zero_grad(set_to_none=True)
        reference.loss(tokens_t, targets_t).backward()
    return step, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def bench_forward_backward(name, steps, use_torch, out=print):
    config, batch, seq_len = BENCH_CONFIGS[name]
    model = Llama(config, seed=0, dtype=np.float32)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.vocab_size, size=(batch, seq_len))
    targets = rng.integers(0, config.vocab_size, size=(batch, seq_len))

    def ours():
        model.loss_and_grads(tokens, targets)

    theirs, torch_info = torch_step_function(model, tokens, targets) if use_torch else (None, None)
    ours()  # warm-up: first touches of memory, BLAS start-up
    if theirs:
        theirs()
    our_times, their_times = [], []
    for _ in range(steps):  # alternate, so both see the same machine conditions
        our_times.append(_timed(ours))
        if theirs:
            their_times.append(_timed(theirs))
    tokens_per_step = batch * seq_len
    our_rate = tokens_per_step / statistics.median(our_times)
    peak = peak_step_memory(ours)
    params_mb = sum(p.nbytes for p in model.params.values()) / 2 ** 20
    out(f"[{name}] dim {config.dim}, {config.n_layers} layers, {config.n_heads} heads "
        f"({config.n_kv_heads} kv), hidden {config.hidden_dim}, vocab {config.vocab_size}, "
        f"batch {batch} x seq {seq_len}, float32, {model.num_params() / 1e6:.2f}M params")
    out(f"  tinyllama_np forward+backward: {our_rate:8.0f} tokens/s  "
        f"(median of {steps} steps, best {tokens_per_step / min(our_times):.0f})")
    out(f"  peak memory of one step: {peak / 2 ** 20:.0f} MB of arrays "
        f"(+ {params_mb:.0f} MB parameters, {params_mb:.0f} MB gradients)")
    result = {"config": name, "tokens_per_s": our_rate, "peak_step_bytes": peak,
              "flops_per_token": training_flops_per_token(config, seq_len)}
    if theirs:
        their_rate = tokens_per_step / statistics.median(their_times)
        out(f"  PyTorch eager forward+backward: {their_rate:7.0f} tokens/s  ({torch_info})")
        out(f"  ratio tinyllama_np / PyTorch: {our_rate / their_rate:.2f}")
        result["torch_tokens_per_s"] = their_rate
    return result


def run(args):
    if args.decode:
        return bench_decode.run(args)
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    print(f"thread settings: {thread_settings()}")
    peak = measure_matmul_peak()
    print(f"float32 matrix-product peak here: {peak / 1e9:.0f} GFLOP/s (1024x1024 @ 1024x1024)")
    for name in args.configs:
        result = bench_forward_backward(name, args.steps, use_torch=not args.no_torch)
        mfu = result["tokens_per_s"] * result["flops_per_token"] / peak
        print(f"  model FLOPs utilisation: {100 * mfu:.0f}% of that peak "
              f"({result['flops_per_token'] / 1e6:.1f} MFLOP per token)")


def add_command(subparsers):
    parser = subparsers.add_parser("bench", help="measure tokens/s and memory (vs PyTorch if installed)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--configs", nargs="+", default=list(BENCH_CONFIGS), choices=list(BENCH_CONFIGS),
                        help="which configurations to run")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--decode", action="store_true",
                        help="measure generation (tokens/s with and without the KV cache) instead")
    parser.set_defaults(run=run)
