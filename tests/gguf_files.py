"""GGUF test files written with the `gguf` package (llama.cpp's own Python writer), so our
reader is checked against files we did not write ourselves. Used by several test modules."""

import numpy as np

from tinyllama_np.checkpoint.gguf import LAYER_NAMES

OUR_TO_GGUF = {ours: theirs for theirs, ours in LAYER_NAMES.items()}


def gguf_name(ours):
    if ours == "tok_embeddings.weight":
        return "token_embd.weight"
    if ours == "norm.weight":
        return "output_norm.weight"
    if ours in ("output.weight", "rope_freqs"):
        return "output.weight" if ours == "output.weight" else "rope_freqs.weight"
    _, layer, rest = ours.split(".", 2)
    return f"blk.{layer}.{OUR_TO_GGUF[rest]}"


def write_gguf_model(gguf, model, path, quant="F32", extra=None, tensors=None, alignment=None):
    """`model` as a GGUF llama file: matrices in `quant` (a GGMLQuantizationType name), the
    1-D norms in F32 as llama.cpp does. Returns {our name: the weights as the file holds
    them, dequantised by the gguf package}."""
    c = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(c.n_layers)
    writer.add_context_length(c.max_seq_len)
    writer.add_embedding_length(c.dim)
    writer.add_feed_forward_length(c.hidden_dim)
    writer.add_head_count(c.n_heads)
    writer.add_head_count_kv(c.n_kv_heads)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_layer_norm_rms_eps(c.norm_eps)
    writer.add_vocab_size(c.vocab_size)
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    for key, (kind, value) in (extra or {}).items():
        getattr(writer, "add_" + kind)(key, value)
    stored = {}
    qtype = gguf.GGMLQuantizationType[quant]
    for name, value in (tensors or model.params).items():
        value = np.asarray(value, np.float32)
        if value.ndim == 1 or quant == "F32":
            writer.add_tensor(gguf_name(name), value)
            stored[name] = value
        elif quant == "F16":
            writer.add_tensor(gguf_name(name), value.astype(np.float16))
            stored[name] = value.astype(np.float16).astype(np.float32)
        else:
            raw = gguf.quants.quantize(value, qtype)
            writer.add_tensor(gguf_name(name), raw, raw_dtype=qtype)
            stored[name] = gguf.quants.dequantize(raw, qtype).reshape(value.shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored
