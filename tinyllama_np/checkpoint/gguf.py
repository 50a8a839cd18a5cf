"""GGUF llama files (llama.cpp's format) as a Llama: config, tensor names, weights.

The container (header, metadata, tensor infos) is parsed in ../gguf_file.py. Here:
`llama.*` keys give the model's shape, GGUF's tensor names become Meta's, and each tensor
is dequantised (gguf_quants.py) into the model a few million weights at a time. The
tokenizer inside the same file is read by tokenizer/gguf_vocab.py, the chat template by
generation/chat.py.

Row order of q and k. llama.cpp's convert_hf_to_gguf.py permutes the rows of Hugging
Face's q_proj / k_proj back, so GGUF llama files hold wq and wk in Meta's order (RoPE on
interleaved pairs, llama.cpp's "rope type NORM" for the llama architecture): we load them
as they are. Checked on SmolLM2 (tests/test_gguf.py): its loss on an English text is 1.32
as stored and 2.18 with Hugging Face's order imposed, and its logits equal those of
transformers reading the same file (which permutes the rows into its own order).
"""

import math

import numpy as np

from ..gguf_file import DEFAULT_ALIGNMENT, MAGIC, file_error, read_gguf  # noqa: F401
from .gguf_quants import dequantize, tensor_bytes
from .tensors import CHUNK_ELEMENTS, check_tensor_count, make_config

# GGUF tensor name -> ours (after "blk.{i}." -> "layers.{i}.").
LAYER_NAMES = {
    "attn_norm.weight": "attention_norm.weight",
    "attn_q.weight": "attention.wq.weight",
    "attn_k.weight": "attention.wk.weight",
    "attn_v.weight": "attention.wv.weight",
    "attn_output.weight": "attention.wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "feed_forward.w1.weight",
    "ffn_down.weight": "feed_forward.w2.weight",
    "ffn_up.weight": "feed_forward.w3.weight",
}
GLOBAL_NAMES = {"token_embd.weight": "tok_embeddings.weight", "output_norm.weight": "norm.weight",
                "output.weight": "output.weight"}
ROPE_FREQS = "rope_freqs.weight"  # LLaMA 3.1+: a divisor per RoPE frequency (see below)


class GGUFTensor:
    """A tensor as it lies in a GGUF file: raw (maybe quantised) bytes of shape `shape`."""

    def __init__(self, raw, type_name, shape):
        self.raw, self.type_name, self.shape = raw, type_name, shape

    def copy_into(self, destination):
        """destination[...] = the weights, dequantised a few million at a time."""
        rows = self.raw.reshape(self.shape[0] if len(self.shape) > 1 else 1, -1)
        step = max(1, CHUNK_ELEMENTS // max(1, math.prod(self.shape[1:])))
        flat = destination.reshape(len(rows), -1)
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            flat[start:start + step] = dequantize(chunk.reshape(-1), self.type_name).reshape(
                len(chunk), -1)

    def to_numpy(self):
        out = np.empty(self.shape, np.float32)
        self.copy_into(out)
        return out


def gguf_tensors(infos, data):
    """name -> GGUFTensor for the infos of read_gguf."""
    tensors = {}
    for name, (type_name, shape, begin) in infos.items():
        size = tensor_bytes(type_name, math.prod(shape))
        tensors[name] = GGUFTensor(data[begin:begin + size], type_name, shape)
    return tensors


# ---------------------------------------------------------------------------- the model

def gguf_config(metadata, tensors, path, freq_factors=None):
    """A LlamaConfig from the `llama.*` metadata (and the tensor infos, for what it may
    omit); freq_factors: the values of rope_freqs.weight, if the file has it."""
    architecture = metadata.get("general.architecture")
    if architecture != "llama":
        raise file_error(path, f"general.architecture is {architecture!r}: we load LLaMA "
                               "models only ('llama')")

    def integer(key, default=None):
        value = metadata.get("llama." + key, default)
        if value is None:
            raise file_error(path, f"the metadata lacks llama.{key}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise file_error(path, f"llama.{key} = {value!r} must be a positive integer")
        return value

    def number(key, default):
        value = metadata.get("llama." + key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise file_error(path, f"llama.{key} = {value!r} must be a positive number")
        return float(value)

    if "token_embd.weight" not in tensors:
        raise file_error(path, "there is no token_embd.weight tensor")
    dim, n_heads = integer("embedding_length"), integer("attention.head_count")
    embedding_rows = tensors["token_embd.weight"][1][0]
    head_dim = dim // n_heads if dim % n_heads == 0 else None
    for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        if "llama." + key in metadata and metadata["llama." + key] != head_dim:
            raise file_error(path, f"llama.{key} = {metadata['llama.' + key]!r} differs from "
                                   f"embedding_length / head_count = {dim / n_heads:g}: not "
                                   "supported")
    if metadata.get("llama.expert_count", 0):
        raise file_error(path, "a mixture-of-experts model (llama.expert_count): not supported")
    config = make_config(
        path, "GGUF llama metadata",
        vocab_size=integer("vocab_size", embedding_rows), dim=dim,
        n_layers=integer("block_count"), n_heads=n_heads,
        n_kv_heads=integer("attention.head_count_kv", n_heads),
        hidden_dim=integer("feed_forward_length"),
        max_seq_len=integer("context_length", 2048),
        norm_eps=number("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta=number("rope.freq_base", 10000.0),
        tie_embeddings="output.weight" not in tensors,
        rope_scaling=gguf_rope_scaling(metadata, freq_factors, path))
    return config


def gguf_rope_scaling(metadata, freq_factors, path):
    """RoPE scaling from GGUF: llama.rope.scaling.type (linear), or rope_freqs.weight.

    LLaMA 3.1's "llama3" scaling is stored as the tensor rope_freqs.weight: one divisor per
    frequency (head_dim / 2 of them), which is what llama3 scaling computes from its
    parameters (see nn/position.py); we keep the divisors themselves ("freq_factors").
    """
    kind = metadata.get("llama.rope.scaling.type", "none")
    if kind not in ("none", "linear"):
        raise file_error(path, f"llama.rope.scaling.type {kind!r} is not implemented (we "
                               "implement none, linear, and LLaMA 3's rope_freqs)")
    if freq_factors is not None:
        if kind != "none":
            raise file_error(path, f"both rope_freqs.weight and scaling type {kind!r}")
        return {"rope_type": "freq_factors", "factors": freq_factors.tolist()}
    if kind == "linear":
        factor = metadata.get("llama.rope.scaling.factor")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise file_error(path, f"llama.rope.scaling.factor = {factor!r} must be positive")
        return {"rope_type": "linear", "factor": float(factor)}
    return None


def read_gguf_model(path):
    """(config, tensors under our names) from a GGUF llama file."""
    metadata, infos, data = read_gguf(path)
    stored = gguf_tensors(infos, data)
    freq_factors = None
    if ROPE_FREQS in stored:
        freq_factors = stored.pop(ROPE_FREQS)
        if len(freq_factors.shape) != 1 or freq_factors.shape[0] > 1 << 16:
            raise file_error(path, f"rope_freqs.weight has shape {freq_factors.shape}")
        freq_factors = freq_factors.to_numpy()
    config = gguf_config(metadata, infos, path, freq_factors)
    check_tensor_count(config, len(stored), path)
    tensors = {}
    for name, tensor in stored.items():
        ours = GLOBAL_NAMES.get(name)
        if ours is None and name.startswith("blk."):
            layer, _, rest = name[4:].partition(".")
            if layer.isdigit() and rest in LAYER_NAMES:
                ours = f"layers.{int(layer)}.{LAYER_NAMES[rest]}"
        if ours is None:
            raise file_error(path, f"unexpected tensor {name} (not a LLaMA parameter)")
        tensors[ours] = tensor
    return config, tensors
