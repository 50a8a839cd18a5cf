"""Hugging Face LLaMA folders: config.json + safetensors weights, other names, other row order.

    config.json                       the hyper-parameters, under Hugging Face's names
    model.safetensors                 all weights in one file, or, for large models,
    model.safetensors.index.json      {"weight_map": {tensor name: shard file name}} plus
    model-00001-of-00002.safetensors  the shards it names

Three differences from Meta's checkpoints (and ours):

1. Names: model.layers.0.self_attn.q_proj.weight is our layers.0.attention.wq.weight,
   mlp.gate_proj / up_proj / down_proj are w1 / w3 / w2, input_layernorm and
   post_attention_layernorm are attention_norm and ffn_norm, lm_head is output.
2. RoPE convention. Meta rotates consecutive pairs of a head's dimensions, (0,1), (2,3), ...
   Hugging Face's "rotate half" pairs dimension i with i + head_dim/2. The two are the same
   computation if the rows of wq and wk are reordered within each head: Meta's even rows
   first, then its odd rows. Hugging Face's conversion script did exactly that, so we undo
   it on load and redo it on save (see `rope_row_order`).
3. Weights are usually bfloat16, which NumPy lacks: converted exactly to float32 on load.
"""

import json
import os

import numpy as np

from ..atomic import atomic_write
from .files import file_error
from .safetensors import read_safetensors, write_safetensors
from ..nn.position import ROPE_SCALING_FIELDS
from .tensors import StoredTensor, check_tensor_count, make_config, param_shapes

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
SAVE_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}

# Our name (after "layers.{i}.") -> Hugging Face's (after "model.layers.{i}.").
LAYER_NAMES = {
    "attention_norm.weight": "input_layernorm.weight",
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
}


def hf_names(config):
    """Our parameter name -> Hugging Face's, for every parameter of `config`."""
    names = {"tok_embeddings.weight": "model.embed_tokens.weight"}
    for i in range(config.n_layers):
        for ours, theirs in LAYER_NAMES.items():
            names[f"layers.{i}.{ours}"] = f"model.layers.{i}.{theirs}"
    names["norm.weight"] = "model.norm.weight"
    if not config.tie_embeddings:
        names["output.weight"] = "lm_head.weight"
    return names


def rope_row_order(n_heads, head_dim):
    """Hugging Face's rows of wq (or wk) as indices into Meta's: hf_weight = meta_weight[order].

    Within each head, Meta's rows 0, 2, 4, ... come first and 1, 3, 5, ... second. Example,
    one head of size 6: order = [0, 2, 4, 1, 3, 5]. Meta rotates the pairs (0,1), (2,3),
    (4,5); after the reordering those rows sit at positions (0,3), (1,4), (2,5), which are
    exactly the pairs (i, i + 3) that rotate-half rotates, with the same frequencies.
    """
    rows = np.arange(n_heads * head_dim).reshape(n_heads, head_dim // 2, 2)
    return rows.transpose(0, 2, 1).reshape(-1)


def _rope_rows(config):
    """Our parameter name -> its row order, for the weights Hugging Face permutes."""
    q_order = rope_row_order(config.n_heads, config.head_dim)
    k_order = rope_row_order(config.n_kv_heads, config.head_dim)
    orders = {}
    for i in range(config.n_layers):
        orders[f"layers.{i}.attention.wq.weight"] = q_order
        orders[f"layers.{i}.attention.wk.weight"] = k_order
    return orders


# ---------------------------------------------------------------------------- config.json

def _read_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise file_error(path, f"not valid JSON: {error}") from None


def read_config(path):
    """A LlamaConfig from a Hugging Face config.json, refusing anything that is not LLaMA."""
    hf = _read_json(path)
    if not isinstance(hf, dict):
        raise file_error(path, "config.json must hold a JSON object")
    architectures = hf.get("architectures") or []
    model_type = hf.get("model_type")
    if not isinstance(architectures, list):
        raise file_error(path, f"architectures = {architectures!r} must be a list")
    if model_type is None and not architectures:
        raise file_error(path, "neither model_type nor architectures is given, so this is "
                               "not recognisably a LLaMA config")
    if (model_type not in (None, "llama")
            or any(name != "LlamaForCausalLM" for name in architectures)):
        raise file_error(path, f"model_type {model_type!r} / architectures {architectures}: "
                               "we load LLaMA models only (model_type 'llama', "
                               "LlamaForCausalLM)")

    def integer(key, default=None):
        value = hf.get(key)
        value = default if value is None else value  # absent or null: the default
        if value is None:
            raise file_error(path, f"config.json lacks the field {key!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise file_error(path, f"config.json field {key} = {value!r} must be a positive "
                                   "integer")
        return value

    def number(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise file_error(path, f"config.json field {key} = {value!r} must be a positive "
                                   "number")
        return float(value)

    def must_be(key, allowed):
        if key in hf and hf[key] not in allowed:
            raise file_error(path, f"config.json field {key} = {hf[key]!r} is not supported "
                                   f"(LLaMA has {allowed[0]!r})")

    must_be("hidden_act", ("silu",))
    must_be("attention_bias", (False,))
    must_be("mlp_bias", (False,))
    dim, n_heads = integer("hidden_size"), integer("num_attention_heads")
    if hf.get("head_dim") is not None and hf["head_dim"] != dim / n_heads:
        raise file_error(path, f"head_dim {hf['head_dim']!r} differs from hidden_size / "
                               f"num_attention_heads = {dim / n_heads:g}; our attention "
                               "needs them equal")
    theta, scaling = _rope(hf, path)
    tie = hf.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise file_error(path, f"config.json field tie_word_embeddings = {tie!r} must be "
                               "true or false")
    return make_config(
        path,
        vocab_size=integer("vocab_size"), dim=dim, n_layers=integer("num_hidden_layers"),
        n_heads=n_heads, n_kv_heads=integer("num_key_value_heads", n_heads),
        hidden_dim=integer("intermediate_size"),
        max_seq_len=integer("max_position_embeddings", 2048),  # transformers' defaults
        norm_eps=number("rms_norm_eps", hf.get("rms_norm_eps", 1e-6)),
        rope_theta=number("rope_theta", theta), tie_embeddings=tie, rope_scaling=scaling)


def _rope(hf, path):
    """(theta, scaling) of RoPE: inside "rope_parameters" in newer configs, at the top level
    (theta) and in "rope_scaling" in older ones.

    Implemented scalings (nn/position.py): "llama3" (LLaMA 3.1/3.2) and "linear". Others
    ("dynamic", "yarn", "longrope", ...) change RoPE in ways we do not implement, and
    loading them as plain RoPE would give wrong answers, so they are refused.
    """
    parameters = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    if not isinstance(parameters, dict) or not isinstance(scaling, dict):
        raise file_error(path, "rope_parameters / rope_scaling must be JSON objects")
    merged = {**scaling, **parameters}
    rope_type = merged.get("rope_type") or merged.get("type") or "default"
    theta = parameters.get("rope_theta", hf.get("rope_theta", 10000.0))
    if rope_type == "default":
        return theta, None
    fields = ROPE_SCALING_FIELDS.get(rope_type) if rope_type != "freq_factors" else None
    if fields is None:
        raise file_error(path, f"RoPE scaling type {rope_type!r} is not implemented (we "
                               "implement 'default', 'llama3' and 'linear')")
    missing = [name for name in fields if name not in merged]
    if missing:
        raise file_error(path, f"RoPE scaling {rope_type!r} lacks {', '.join(missing)}")
    return theta, {"rope_type": rope_type, **{name: merged[name] for name in fields}}


def config_json(config, torch_dtype):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.dim,
        "intermediate_size": config.hidden_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": config.rope_scaling,
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": torch_dtype,
    }


# ---------------------------------------------------------------------------- weights

def _read_sharded(folder, index_path):
    index = _read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
            isinstance(name, str) and isinstance(shard, str) for name, shard in
            weight_map.items()):
        raise file_error(index_path, "needs a weight_map of tensor name -> shard file name")
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        if os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise file_error(index_path, f"shard {shard!r} is not a file name in this folder")
        shard_path = os.path.join(folder, shard)
        in_shard = read_safetensors(shard_path)
        listed = {name for name, file in weight_map.items() if file == shard}
        if set(in_shard) != listed:
            strays = sorted(set(in_shard) ^ listed)
            raise file_error(shard_path, f"does not match {INDEX_FILE}: e.g. {strays[0]} is "
                                         "listed in one but not found in the other")
        tensors.update(in_shard)
    return tensors


def _read_weights(folder):
    single, index = os.path.join(folder, WEIGHTS_FILE), os.path.join(folder, INDEX_FILE)
    if os.path.exists(single):  # preferred when both exist, as transformers does
        return single, read_safetensors(single)
    if os.path.exists(index):
        return index, _read_sharded(folder, index)
    hint = ""
    if any(name.endswith((".bin", ".pth", ".pt")) for name in os.listdir(folder)):
        hint = (" (PyTorch .bin/.pth files are pickles, which can run code when opened: we "
                "read safetensors only; convert them with transformers' save_pretrained)")
    raise file_error(folder, f"no {WEIGHTS_FILE} or {INDEX_FILE}{hint}")


def read_huggingface(path):
    """(config, tensors) from a Hugging Face LLaMA folder, or from one .safetensors file or
    the config.json inside one."""
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise file_error(path, f"no {CONFIG_FILE} in {folder}: a Hugging Face model needs it "
                               "(safetensors files hold tensors but not the model's shape)")
    config = read_config(config_path)
    if os.path.isdir(path) or not path.endswith(".safetensors"):
        source, stored = _read_weights(folder)
    else:
        source, stored = path, read_safetensors(path)
    stored = {name: tensor for name, tensor in stored.items()
              if not name.endswith("rotary_emb.inv_freq")}  # a buffer older exports kept
    if config.tie_embeddings:
        stored.pop("lm_head.weight", None)  # some exports keep a copy of the tied matrix
    check_tensor_count(config, len(stored), source)
    shapes, orders = param_shapes(config), _rope_rows(config)
    tensors = {}
    for ours, theirs in hf_names(config).items():
        if theirs not in stored:
            raise file_error(source, f"tensor {theirs} is missing")
        tensor = stored.pop(theirs)
        if tensor.shape != shapes[ours]:
            raise file_error(source, f"{theirs} has shape {tensor.shape}, but config.json "
                                     f"implies {shapes[ours]}")
        tensors[ours] = StoredTensor(tensor.data, tensor.dtype, orders.get(ours))
    if stored:
        raise file_error(source, f"unexpected tensor {sorted(stored)[0]} (not a LLaMA "
                                 "parameter)")
    return config, tensors


def save_huggingface(model, folder, dtype="float32"):
    """Write `model` as a Hugging Face LLaMA folder: config.json + model.safetensors."""
    scaling = model.config.rope_scaling
    if scaling is not None and scaling["rope_type"] == "freq_factors":
        raise ValueError("RoPE freq_factors (from a GGUF rope_freqs tensor) have no Hugging "
                         "Face config form; save as npz or gguf")
    if dtype not in SAVE_DTYPES:
        raise ValueError(f"Hugging Face weights are saved as {', '.join(SAVE_DTYPES)}, "
                         f"not {dtype!r}")
    config = model.config
    orders = _rope_rows(config)
    tensors = {}
    for ours, theirs in hf_names(config).items():
        weight = model.params[ours]
        tensors[theirs] = weight[orders[ours]] if ours in orders else weight
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, WEIGHTS_FILE), tensors, SAVE_DTYPES[dtype],
                      metadata={"format": "pt"})
    with atomic_write(os.path.join(folder, CONFIG_FILE)) as file:
        file.write(json.dumps(config_json(config, dtype), indent=2).encode() + b"\n")
