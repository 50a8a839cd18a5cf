"""`tinyllama-np bench`: how fast is the model here, and how does it compare with PyTorch?

    tinyllama-np bench                 every suite below, on every configuration
    tinyllama-np bench --suite model   forward+backward tokens/s and peak memory
    tinyllama-np bench --suite train   training steps (forward, backward, clip, AdamW)
    tinyllama-np bench --suite decode  generation tokens/s, with and without the KV cache
    tinyllama-np bench --suite decode --checkpoint model.gguf   a real model's decode speed
    tinyllama-np bench --steps 10      more timed steps (the median is reported)
    tinyllama-np bench --profile       where a training step's time goes, per component

When torch is installed (`pip install torch==2.13.0`; never a dependency), the same model
with the same weights runs in PyTorch eager mode too, in alternating steps back to back,
and the ratios are printed. The model and train suites time our step twice: with one worker
(NumPy's BLAS threads as they are) and data-parallel with one worker per core, each with one
BLAS thread (--workers; 1 if OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is set). torch's threads
are reported, never changed.
"""

from ..bench.decode import bench_decode, bench_decode_checkpoint, bench_python_overhead
from ..bench.profile import profile_step
from ..training.data_parallel import choose_workers
from ..bench.steps import (BENCH_CONFIGS, SUITES, bench_step, measure_matmul_peak,
                           thread_settings)


def run(args):
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    print(f"thread settings: {thread_settings()}")
    workers, why = choose_workers(args.workers)
    print(f"data-parallel workers: {workers} ({why})")
    peak = measure_matmul_peak()
    print(f"float32 matrix-product peak here: {peak / 1e9:.0f} GFLOP/s (1024x1024 @ 1024x1024)")
    if args.checkpoint is not None:
        if args.suite != ["decode"]:
            raise ValueError("--checkpoint measures decoding: use it with --suite decode")
        bench_decode_checkpoint(args.checkpoint, args.steps, use_torch=not args.no_torch)
        return
    if args.profile:
        for name in args.configs:
            config, batch, seq_len = BENCH_CONFIGS[name]
            print(f"[{name}] profile of one training step: dim {config.dim}, {config.n_layers} "
                  f"layers, vocab {config.vocab_size}, batch {batch} x seq {seq_len}, float32")
            profile_step(config, batch, seq_len, args.steps)
        return
    for suite in args.suite:
        for name in args.configs:
            if suite == "decode":
                bench_decode(name, args.steps)
                continue
            result = bench_step(name, suite, args.steps, use_torch=not args.no_torch,
                                workers=workers)
            # On a shared machine the peak moves as neighbours come and go: measured again
            # after each run, the highest so far is the ceiling the run is compared with.
            peak = max(peak, measure_matmul_peak())
            mfu = result["tokens_per_s"] * result["flops_per_token"] / peak
            print(f"  model FLOPs utilisation: {100 * mfu:.0f}% of the highest matrix-product "
                  f"peak measured so far, {peak / 1e9:.0f} GFLOP/s "
                  f"({result['flops_per_token'] / 1e6:.1f} MFLOP of matrix products per token)")
        if suite == "decode":
            bench_python_overhead(args.steps)


def add_command(subparsers):
    parser = subparsers.add_parser("bench", help="measure tokens/s and memory (vs PyTorch if installed)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--configs", nargs="+", default=list(BENCH_CONFIGS), choices=list(BENCH_CONFIGS),
                        help="which configurations to run")
    parser.add_argument("--suite", nargs="+", default=list(SUITES), choices=list(SUITES),
                        help="model: forward+backward; train: full training steps; "
                        "decode: generation with and without the KV cache")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="with --suite decode: measure this checkpoint (any format)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="data-parallel workers timed beside one worker (default: one per core)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the suites: a table of forward and backward time per "
                        "component (share of the step, GFLOP/s of the matrix products)")
    parser.set_defaults(run=run)
