"""`tinyllama-np bench --suite decode`: generation speed, with and without the KV cache.

A random-weight model (float32, batch 1) continues a PROMPT_LEN-token prompt by NEW_TOKENS
tokens through tl.generate_stream. Decode speed counts the tokens after the first (the
first waits for the prompt's prefill, reported on its own); the median of --steps runs.
Without the cache every step re-reads the whole text, so its speed falls as the text grows:
its figure is the average over the same tokens, from one run.

At batch 1 each new token is a chain of matrix-VECTOR products: every weight is read once
and used for one multiply-add, so the speed is bounded by memory bandwidth, not FLOPs.
The GB/s column is (bytes of weights read per token) x (tokens/s).
"""

import statistics
import tempfile
import time

import numpy as np

from ..generation import generate_stream
from ..models import Llama, LlamaConfig

DECODE_CONFIGS = {
    "small": LlamaConfig(vocab_size=512, dim=64, n_layers=4, n_heads=4, n_kv_heads=2,
                         max_seq_len=256),
    "dim288": LlamaConfig(vocab_size=32000, dim=288, n_layers=6, n_heads=6, hidden_dim=768,
                          max_seq_len=256),
}
PROMPT_LEN = 16
NEW_TOKENS = 128


def weight_bytes_per_token(model):
    """Bytes of weights one decoding step reads: all of them, except that the embedding
    table contributes one row (unless it is also the output matrix)."""
    total = sum(p.nbytes for p in model.params.values())
    if not model.config.tie_embeddings:
        embedding = model.params["tok_embeddings.weight"]
        total -= embedding.nbytes - embedding[0].nbytes
    return total


def time_generation(model, prompt, use_cache, **options):
    """(prefill seconds, decode tokens/s) of one generate_stream run."""
    start = time.perf_counter()
    stamps = [time.perf_counter() for _ in generate_stream(model, prompt, NEW_TOKENS,
                                                           use_cache=use_cache, **options)]
    return stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0])


def bench_decode(name, steps, out=print):
    config = DECODE_CONFIGS[name]
    model = Llama(config, seed=0, dtype=np.float32)
    prompt = np.random.default_rng(0).integers(0, config.vocab_size, PROMPT_LEN).tolist()
    bytes_per_token = weight_bytes_per_token(model)
    out(f"[{name}] dim {config.dim}, {config.n_layers} layers, {config.n_heads} heads "
        f"({config.n_kv_heads} kv), hidden {config.hidden_dim}, vocab {config.vocab_size}, "
        f"float32, batch 1, prompt {PROMPT_LEN} + {NEW_TOKENS} new tokens, "
        f"{bytes_per_token / 1e6:.1f} MB of weights read per token")
    time_generation(model, prompt, True, temperature=0)  # warm-up
    results = {}
    for label, use_cache, runs, options in [
            ("greedy, KV cache", True, steps, dict(temperature=0)),
            ("top-p 0.9, KV cache", True, steps, dict(top_p=0.9, seed=0)),
            ("greedy, no cache", False, 1, dict(temperature=0))]:
        timings = [time_generation(model, prompt, use_cache, **options) for _ in range(runs)]
        prefill = statistics.median(t[0] for t in timings)
        rate = statistics.median(t[1] for t in timings)
        results[label] = rate
        out(f"  {label:20s} {rate:8.1f} tokens/s  ({1e3 / rate:6.2f} ms/token, "
            f"{rate * bytes_per_token / 1e9:5.1f} GB/s of weights; "
            f"prefill {1e3 * prefill:.1f} ms)")
    speedup = results["greedy, KV cache"] / results["greedy, no cache"]
    out(f"  KV cache speed-up (greedy): {speedup:.1f}x")
    return results


def measure_copy_bandwidth(megabytes=256, repeats=3):
    """Bytes per second this machine moves in a large array copy (read + write), the best of
    a few: the ceiling for decoding, which streams every weight through once per token."""
    source = np.ones(megabytes * (1 << 20) // 4, np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.nbytes / best


def transformers_decoder(model, folder):
    """(run, description): run(prompt, new_tokens) -> (first-token seconds, decode tokens/s)
    of the same weights in transformers' LlamaForCausalLM (PyTorch eager, its KV cache,
    greedy), or (None, reason) when torch / transformers are not installed."""
    try:
        import torch
        import transformers
        from transformers.generation.streamers import BaseStreamer
    except ImportError:
        return None, "transformers or torch not installed"
    from ..checkpoint import save_checkpoint
    save_checkpoint(model, folder, format="hf")
    reference = transformers.LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    class Stamps(BaseStreamer):
        def __init__(self):
            self.times = []

        def put(self, value):
            self.times.append(time.perf_counter())

        def end(self):
            pass

    def run(prompt, new_tokens):
        stamps = Stamps()
        begin = time.perf_counter()
        with torch.no_grad():
            reference.generate(torch.tensor([prompt]), max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens, do_sample=False, streamer=stamps,
                               pad_token_id=0)
        times = stamps.times[1:]  # the streamer is handed the prompt first
        return times[0] - begin, (len(times) - 1) / (times[-1] - times[0])

    return run, (f"transformers {transformers.__version__} LlamaForCausalLM, torch "
                 f"{torch.__version__}, {torch.get_num_threads()} threads")


def bench_decode_checkpoint(path, steps, new_tokens=32, use_torch=True, out=print):
    """Decode speed of a real checkpoint in float32: tokens/s next to the memory-bandwidth
    bound (copy bandwidth / bytes of weights per token), and the time to first token; with
    transformers installed, the same weights decoded by it, in alternation."""
    from ..checkpoint import load_checkpoint
    start = time.perf_counter()
    model = load_checkpoint(path, dtype=np.float32)
    loaded = time.perf_counter() - start
    config = model.config
    prompt = np.random.default_rng(0).integers(0, config.vocab_size, PROMPT_LEN).tolist()
    bytes_per_token = weight_bytes_per_token(model)
    bandwidth = measure_copy_bandwidth()
    out(f"[{path}] {model.num_params():,} parameters, {config.n_layers} layers, dim "
        f"{config.dim}, float32: {bytes_per_token / 1e6:.0f} MB of weights read per token; "
        f"loaded in {loaded:.1f} s")
    out(f"  memory copy bandwidth {bandwidth / 1e9:.1f} GB/s -> bound "
        f"{bandwidth / bytes_per_token:.1f} tokens/s")
    with tempfile.TemporaryDirectory() as folder:
        theirs, description = transformers_decoder(model, folder) if use_torch else \
            (None, "--no-torch")
        timings, their_timings = [], []
        for _ in range(steps):  # alternate, so both see the same machine conditions
            begin = time.perf_counter()
            stamps = [time.perf_counter() for _ in generate_stream(model, prompt, new_tokens,
                                                                   temperature=0)]
            timings.append((stamps[0] - begin, (len(stamps) - 1) / (stamps[-1] - stamps[0])))
            if theirs is not None:
                their_timings.append(theirs(prompt, new_tokens))
    first = statistics.median(t[0] for t in timings)
    rate = statistics.median(t[1] for t in timings)
    out(f"  greedy, KV cache: {rate:.1f} tokens/s ({1e3 / rate:.0f} ms/token, "
        f"{rate * bytes_per_token / 1e9:.1f} GB/s of weights, "
        f"{100 * rate * bytes_per_token / bandwidth:.0f}% of the bound); time to first token "
        f"{1e3 * first:.0f} ms for a {PROMPT_LEN}-token prompt (median of {steps})")
    result = {"tokens_per_s": rate, "bound_tokens_per_s": bandwidth / bytes_per_token,
              "first_token_s": first}
    if their_timings:
        their_first = statistics.median(t[0] for t in their_timings)
        their_rate = statistics.median(t[1] for t in their_timings)
        out(f"  the same weights in {description}: {their_rate:.1f} tokens/s, first token "
            f"{1e3 * their_first:.0f} ms; ratio ours/theirs {rate / their_rate:.2f} (decode), "
            f"{their_first / first:.2f} (time to first token, theirs/ours)")
        result.update(reference_tokens_per_s=their_rate, reference_first_token_s=their_first)
    else:
        out(f"  (no reference run: {description})")
    return result
