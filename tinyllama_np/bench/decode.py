"""`tinyllama-np bench --suite decode`: generation speed, with and without the KV cache.

A random-weight model (float32, batch 1) continues a PROMPT_LEN-token prompt by NEW_TOKENS
tokens through tl.generate_stream. Decode speed counts the tokens after the first (the
first waits for the prompt's prefill, reported on its own); the median of --steps runs.
Without the cache every step re-reads the whole text, so its speed falls as the text grows:
its figure is the average over the same tokens, from one run.

At batch 1 each new token is a chain of matrix-VECTOR products: every weight is read once
and used for one multiply-add, so the speed is bounded by memory bandwidth, not FLOPs.
The GB/s column is (bytes of weights read per token) x (tokens/s); the bound is this
machine's measured read bandwidth, all cores reading at once an array the size of the
weights, / (bytes per token).

The yardstick is ReferenceDecoder below: a minimal NumPy greedy decoder of the same model,
with no modules, no checks, no sampling options, its projections fused (q, k and v in one
matrix product; w1 and w3 in another) and its KV cache allocated once: what a careful
engineer would write to decode fast in plain NumPy. The ratio tinyllama_np / reference says
what the readable version costs (or saves); the two are timed in alternation. The tests check
that it picks the same tokens as tl.generate.

Above both lies a ceiling for any decoder that multiplies these matrices with NumPy: the
reference's matrix products alone, one after another with nothing between them
(time_products_only). Everything else a decoder does (norms, RoPE, attention over the cache,
choosing the token, the Python around it) adds to their time, so (tokens/s) / (products
alone) is the share of a decoder's time spent in its matrix products.

Prefill (the prompt in one forward pass, PREFILL_LEN tokens) is reported in tokens/s.
Per-token Python overhead, which matters for deep models, is measured on OVERHEAD_CONFIG:
30 layers so narrow that the arithmetic is negligible, so the time per token per layer is
the cost of the Python code around the arithmetic.
"""

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..generation import KVCache, generate_stream
from ..models import Llama, LlamaConfig

DECODE_CONFIGS = {
    "small": LlamaConfig(vocab_size=512, dim=64, n_layers=4, n_heads=4, n_kv_heads=2,
                         max_seq_len=256),
    "tiny": LlamaConfig(vocab_size=2048, dim=128, n_layers=4, n_heads=4, max_seq_len=256),
    "dim288": LlamaConfig(vocab_size=32000, dim=288, n_layers=6, n_heads=6, hidden_dim=768,
                          max_seq_len=256),
}
PROMPT_LEN = 16
NEW_TOKENS = 128
PREFILL_LEN = 128
OVERHEAD_CONFIG = LlamaConfig(vocab_size=32, dim=16, n_layers=30, n_heads=2, max_seq_len=256)


def measure_read_bandwidth(threads, nbytes, repeats=5):
    """Bytes/s of summing a float32 array of `nbytes` bytes over and over, split into
    `threads` parts summed at once on as many threads (NumPy lets go of Python's lock while
    it sums), as a multi-threaded BLAS reads a matrix; the best of `repeats` after one
    warm-up. An array the size of a model's weights meets the caches as decoding does: the
    part of it that stays in cache from one pass to the next is read faster."""
    parts = np.array_split(np.ones(max(nbytes // 4, threads), np.float32), threads)
    with ThreadPoolExecutor(threads) as pool:
        def read_all():
            list(pool.map(np.sum, parts))
        read_all()
        best = min(_seconds(read_all) for _ in range(repeats))
    return sum(part.nbytes for part in parts) / best


def _seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


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


def time_reference(model, prompt):
    """Decode tokens/s of ReferenceDecoder (greedy), timed like time_generation."""
    reference = ReferenceDecoder(model)
    for pos, token in enumerate(prompt):
        logits = reference.step(token, pos)
    stamps = []
    for pos in range(len(prompt), len(prompt) + NEW_TOKENS - 1):
        logits = reference.step(int(np.argmax(logits)), pos)
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def time_products_only(reference, tokens=NEW_TOKENS):
    """Tokens/s of ReferenceDecoder's matrix-vector products alone: for each token, every
    matrix a step multiplies (wqkv, wo, w13, w2 of each layer, then the output matrix) times
    a vector of ones, back to back. The same bytes are read as in a decoding step."""
    matrices = [layer[name] for layer in reference.layers for name in ("wqkv", "wo", "w13", "w2")]
    matrices.append(reference.output)
    vectors = [np.ones(matrix.shape[0], np.float32) for matrix in matrices]
    start = time.perf_counter()
    for _ in range(tokens):
        for vector, matrix in zip(vectors, matrices):
            vector @ matrix
    return tokens / (time.perf_counter() - start)


def time_prefill(model, prompt_len):
    """Tokens/s of reading a prompt of prompt_len tokens in one forward pass into a KV cache."""
    tokens = np.random.default_rng(1).integers(0, model.config.vocab_size, (1, prompt_len))
    return prompt_len / _seconds(lambda: model.forward(tokens, cache=KVCache(model.config)))


def python_overhead_per_layer(steps):
    """Seconds per token per layer of decoding OVERHEAD_CONFIG, ours and the reference's."""
    model = Llama(OVERHEAD_CONFIG, seed=0, dtype=np.float32)
    prompt = [1, 2, 3]
    time_generation(model, prompt, True, temperature=0)
    ours, reference = [], []
    for _ in range(steps):  # in alternation
        ours.append(time_generation(model, prompt, True, temperature=0)[1])
        reference.append(time_reference(model, prompt))
    ours, reference = statistics.median(ours), statistics.median(reference)
    return [1 / (rate * OVERHEAD_CONFIG.n_layers) for rate in (ours, reference)]


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
    # Greedy decoding, the reference loop and its products alone in alternation, so all
    # three see the same machine.
    greedy, reference, products = [], [], []
    products_decoder = ReferenceDecoder(model)
    for _ in range(steps):
        greedy.append(time_generation(model, prompt, True, temperature=0))
        reference.append(time_reference(model, prompt))
        products.append(time_products_only(products_decoder))
    timings = {"greedy, KV cache": greedy,
               "top-p 0.9, KV cache": [time_generation(model, prompt, True, top_p=0.9, seed=0)
                                       for _ in range(steps)],
               "greedy, no cache": [time_generation(model, prompt, False, temperature=0)]}
    results = {}
    for label, runs in timings.items():
        prefill = statistics.median(t[0] for t in runs)
        rate = statistics.median(t[1] for t in runs)
        results[label] = rate
        out(f"  {label:20s} {rate:8.1f} tokens/s  ({1e3 / rate:6.2f} ms/token, "
            f"{rate * bytes_per_token / 1e9:5.1f} GB/s of weights; "
            f"prefill {1e3 * prefill:.1f} ms)")
    speedup = results["greedy, KV cache"] / results["greedy, no cache"]
    out(f"  KV cache speed-up (greedy): {speedup:.1f}x")
    results["reference"] = statistics.median(reference)
    ratios = [t[1] / r for t, r in zip(greedy, reference)]
    out(f"  reference NumPy loop (fused projections, greedy): {results['reference']:8.1f} "
        f"tokens/s; ratio tinyllama_np / reference: "
        f"{results['greedy, KV cache'] / results['reference']:.2f} (each alternating pair: "
        f"{', '.join(f'{ratio:.2f}' for ratio in ratios)})")
    results["products only"] = statistics.median(products)
    out(f"  the reference's matrix products alone, back to back: {results['products only']:8.1f} "
        f"tokens/s, a ceiling for NumPy decoders of these weights; greedy decode reaches "
        f"{results['greedy, KV cache'] / results['products only']:.2f} of it, the reference "
        f"{results['reference'] / results['products only']:.2f} (1.2x the reference would be "
        f"{1.2 * results['reference'] / results['products only']:.2f})")
    cores = os.cpu_count()
    one_core = measure_read_bandwidth(1, bytes_per_token)
    all_cores = measure_read_bandwidth(cores, bytes_per_token)
    out(f"  memory-bandwidth bound: {all_cores / bytes_per_token:.0f} tokens/s ({cores} threads "
        f"reading {bytes_per_token / 1e6:.1f} MB, the weights' size, over and over at "
        f"{all_cores / 1e9:.1f} GB/s, one thread at {one_core / 1e9:.1f}); greedy decode reaches "
        f"{100 * results['greedy, KV cache'] * bytes_per_token / all_cores:.0f}% of it, the "
        f"reference {100 * results['reference'] * bytes_per_token / all_cores:.0f}%")
    prefill_len = min(PREFILL_LEN, config.max_seq_len)
    time_prefill(model, prefill_len)
    prefill = statistics.median(time_prefill(model, prefill_len) for _ in range(steps))
    results["prefill"] = prefill
    out(f"  prefill, {prefill_len} prompt tokens in one pass: {prefill:.0f} tokens/s")
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


def bench_python_overhead(steps, out=print):
    ours, reference = python_overhead_per_layer(steps)
    c = OVERHEAD_CONFIG
    out(f"[overhead] per-token Python overhead: a {c.n_layers}-layer model of dim {c.dim} "
        f"(arithmetic negligible), greedy decode: {1e6 * ours:.0f} us per layer per token "
        f"(reference loop {1e6 * reference:.0f} us); a 30-layer model pays "
        f"{30e3 * ours:.1f} ms per token for it")
    return ours, reference


class ReferenceDecoder:
    """The yardstick (module docstring): greedy decoding of a Llama's weights, batch 1."""

    def __init__(self, model):
        c = self.config = model.config
        p = model.params
        self.layers = []
        for i in range(c.n_layers):
            w = lambda name: p[f"layers.{i}.{name}.weight"]
            self.layers.append(dict(
                attention_norm=w("attention_norm"), ffn_norm=w("ffn_norm"),
                wqkv=np.concatenate([w("attention.wq"), w("attention.wk"), w("attention.wv")]).T.copy(),
                wo=w("attention.wo").T.copy(),
                w13=np.concatenate([w("feed_forward.w1"), w("feed_forward.w3")]).T.copy(),
                w2=w("feed_forward.w2").T.copy()))
        self.embedding, self.norm = p["tok_embeddings.weight"], p["norm.weight"]
        self.output = (p["tok_embeddings.weight"] if c.tie_embeddings else p["output.weight"]).T.copy()
        head_dim, half = c.head_dim, c.head_dim // 2
        angles = np.outer(np.arange(c.max_seq_len),
                          1.0 / c.rope_theta ** (np.arange(0, head_dim, 2) / head_dim))
        self.cos, self.sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
        shape = (c.n_layers, c.max_seq_len, c.n_kv_heads, head_dim)
        self.keys, self.values = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.q_dim, self.kv_dim, self.half = c.n_heads * head_dim, c.n_kv_heads * head_dim, half

    def rms_norm(self, x, weight):
        return x * (weight / np.sqrt(x @ x / x.size + self.config.norm_eps))

    def rope(self, x, pos):
        """x (heads, head_dim), Meta's interleaved pairs rotated by the angles of `pos`."""
        even, odd = x[:, 0::2], x[:, 1::2]
        cos, sin = self.cos[pos], self.sin[pos]
        out = np.empty_like(x)
        out[:, 0::2] = even * cos - odd * sin
        out[:, 1::2] = even * sin + odd * cos
        return out

    def step(self, token, pos):
        """Logits (vocab,) for `token` at position `pos`; fills the caches at pos."""
        c = self.config
        n_rep, scale = c.n_heads // c.n_kv_heads, c.head_dim ** -0.5
        x = self.embedding[token].copy()
        for i, layer in enumerate(self.layers):
            qkv = self.rms_norm(x, layer["attention_norm"]) @ layer["wqkv"]
            q = self.rope(qkv[:self.q_dim].reshape(c.n_heads, c.head_dim), pos)
            self.keys[i, pos] = self.rope(qkv[self.q_dim:self.q_dim + self.kv_dim]
                                          .reshape(c.n_kv_heads, c.head_dim), pos)
            self.values[i, pos] = qkv[self.q_dim + self.kv_dim:].reshape(c.n_kv_heads, c.head_dim)
            keys, values = self.keys[i, :pos + 1], self.values[i, :pos + 1]      # (T, kv, hd)
            q = q.reshape(c.n_kv_heads, n_rep, c.head_dim)
            scores = np.einsum("grd,tgd->grt", q, keys) * scale
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            x = x + np.einsum("grt,tgd->grd", scores, values).reshape(-1) @ layer["wo"]
            gate, content = np.split(self.rms_norm(x, layer["ffn_norm"]) @ layer["w13"], 2)
            x = x + (gate / (1.0 + np.exp(-gate)) * content) @ layer["w2"]
        return self.rms_norm(x, self.norm) @ self.output

    def generate(self, prompt, new_tokens):
        """Greedy: the prompt one token at a time, then `new_tokens` tokens."""
        for pos, token in enumerate(prompt):
            logits = self.step(token, pos)
        out = []
        for pos in range(len(prompt), len(prompt) + new_tokens):
            out.append(int(np.argmax(logits)))
            if len(out) < new_tokens:
                logits = self.step(out[-1], pos)
        return out
