"""LoRA adapters saved alone: our .npz, or Hugging Face PEFT's folder.

    npz    layers.0.attention.wq.lora_A.npy, ...lora_B.npy, ...   our names
           __lora__.npy                                           rank, alpha, dropout, targets
                                                                  (JSON in a uint8 array)
    peft   adapter_config.json       {"peft_type": "LORA", "r": 8, "lora_alpha": 16,
                                      "target_modules": ["q_proj", "v_proj"], ...}
           adapter_model.safetensors base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
                                     ... lora_B.weight, lm_head.lora_A.weight, ...

A PEFT adapter applies to the Hugging Face export of the same base model, whose wq and wk
rows are reordered within each head (huggingface.py, `rope_row_order`). The update B A
follows its weight: (B A)[order] = B[order] A, so B of wq and wk is reordered, A is not.
"""

import json
import os

import numpy as np

from ..atomic import atomic_write, write_text_atomically
from ..training.lora import (ADAPTER_TENSORS, TARGETS, adapter_tensors, apply_lora, layer_owners,
                             lora_layers)
from .files import file_error
from .huggingface import LAYER_NAMES, rope_row_order
from .safetensors import read_safetensors, write_safetensors
from .tensors import bfloat16_to_float32

CONFIG_MEMBER = "__lora__"
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FORMATS = ("npz", "peft")
# Our target -> Hugging Face's module name.
HF_MODULES = {ours.split(".")[1]: theirs.split(".")[1] for ours, theirs in LAYER_NAMES.items()
              if ours.split(".")[1] in TARGETS}
HF_MODULES["output"] = "lm_head"


def _peft_name(path, key):
    """'layers.0.attention.wq', 'lora_A' -> PEFT's tensor name."""
    if path == "output":
        return f"base_model.model.lm_head.{key}.weight"
    _, index, inside = path.split(".", 2)       # "layers", "0", "attention.wq"
    hf_layer = LAYER_NAMES[f"{inside}.weight"].removesuffix(".weight")
    return f"base_model.model.model.layers.{index}.{hf_layer}.{key}.weight"


def _row_order(model, path):
    """The Hugging Face row order of the layer at `path` (None for unpermuted layers)."""
    config = model.config
    if path.endswith(".attention.wq"):
        return rope_row_order(config.n_heads, config.head_dim)
    if path.endswith(".attention.wk"):
        return rope_row_order(config.n_kv_heads, config.head_dim)
    return None


def save_adapter(model, path, format="npz"):
    """Write the model's LoRA adapters to `path`: an .npz file, or a PEFT folder."""
    if not lora_layers(model):
        raise ValueError("this model has no LoRA adapters to save (apply_lora first)")
    config = model.lora_config
    path = os.fspath(path)
    if format == "npz":
        arrays = dict(adapter_tensors(model))
        arrays[CONFIG_MEMBER] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
        with atomic_write(path) as file:
            np.savez(file, **arrays)
    elif format == "peft":
        tensors = {}
        for layer_path, layer in lora_layers(model).items():
            order = _row_order(model, layer_path)
            lora_b = layer.params["lora_B"]
            tensors[_peft_name(layer_path, "lora_A")] = layer.params["lora_A"]
            tensors[_peft_name(layer_path, "lora_B")] = lora_b if order is None else lora_b[order]
        os.makedirs(path, exist_ok=True)
        write_safetensors(os.path.join(path, PEFT_WEIGHTS), tensors, "F32",
                          metadata={"format": "pt"})
        peft_config = {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": config["rank"],
            "lora_alpha": config["alpha"], "lora_dropout": config["dropout"],
            "target_modules": [HF_MODULES[t] for t in config["targets"]], "bias": "none",
            "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
            "inference_mode": True, "init_lora_weights": True, "modules_to_save": None,
            "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {},
            "base_model_name_or_path": None,
        }
        write_text_atomically(os.path.join(path, PEFT_CONFIG), json.dumps(peft_config, indent=2) + "\n")
    else:
        raise ValueError(f"unknown adapter format {format!r}; choose from {', '.join(ADAPTER_FORMATS)}")
    return path


def load_adapter(model, path):
    """Load the adapters at `path` (npz file or PEFT folder) into `model`.

    A model without adapters gets them first (apply_lora with the file's rank, alpha and
    targets); one that has them must have the same ones. Shapes that do not fit the model
    (an adapter for another base model) raise a ValueError, and the model is not changed.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        config, tensors = _read_peft(model, path)
    else:
        config, tensors = _read_npz(path)
    existing = lora_layers(model)
    expected = {}  # name -> shape: A is (rank, in), B is (out, rank)
    for layer_path, layer in _planned_layers(model, config["targets"]).items():
        out_features, in_features = layer.params["weight"].shape
        expected[f"{layer_path}.lora_A"] = (config["rank"], in_features)
        expected[f"{layer_path}.lora_B"] = (out_features, config["rank"])
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise file_error(path, f"the adapter does not fit this model: "
                               f"{'missing ' + missing[0] if missing else 'unexpected ' + extra[0]}")
    for name, shape in expected.items():
        if tensors[name].shape != shape:
            raise file_error(path, f"{name} has shape {tensors[name].shape}, this model needs "
                                   f"{shape}: an adapter for a different base model?")
    if existing:
        if {k: v for k, v in model.lora_config.items() if k != "dropout"} != \
                {k: v for k, v in config.items() if k != "dropout"}:
            raise file_error(path, f"the adapter ({config}) differs from the model's LoRA "
                                   f"layers ({model.lora_config})")
    else:
        apply_lora(model, config["targets"], config["rank"], config["alpha"], config["dropout"])
    params = model.params
    for name, value in tensors.items():
        params[name][...] = value
    return model


def _planned_layers(model, targets):
    """{path: layer} for the layers the adapter targets (adapted or not yet)."""
    layers = {}
    for target in targets:
        for layer_path, owners in layer_owners(model, target):
            parent, name = owners[-1]
            layers[layer_path] = getattr(parent, name)
    return layers


def _check_config(config, path):
    if not isinstance(config, dict):
        raise file_error(path, "the adapter config is not a JSON object")
    rank, alpha, targets = config.get("rank"), config.get("alpha"), config.get("targets")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise file_error(path, f"the adapter's rank {rank!r} is not a positive integer")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise file_error(path, f"the adapter's alpha {alpha!r} is not a number")
    if not isinstance(targets, list) or not targets or any(t not in TARGETS for t in targets):
        raise file_error(path, f"the adapter's targets {targets!r} are not a list of "
                               f"{' '.join(TARGETS)}")
    dropout = config.get("dropout", 0.0) or 0.0
    return {"rank": rank, "alpha": float(alpha), "dropout": float(dropout), "targets": targets}


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise file_error(path, f"not a readable adapter file: {error}") from None
    if CONFIG_MEMBER not in arrays:
        raise file_error(path, f"no {CONFIG_MEMBER} member: not an adapter saved by save_adapter")
    try:
        config = json.loads(arrays.pop(CONFIG_MEMBER).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise file_error(path, f"the adapter config is not valid JSON: {error}") from None
    return _check_config(config, path), arrays


def _read_peft(model, folder):
    config_path = os.path.join(folder, PEFT_CONFIG)
    weights_path = os.path.join(folder, PEFT_WEIGHTS)
    for needed in (config_path, weights_path):
        if not os.path.isfile(needed):
            raise file_error(folder, f"no {os.path.basename(needed)}: not a PEFT adapter folder")
    try:
        with open(config_path, encoding="utf-8") as file:
            peft = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise file_error(config_path, f"not valid JSON: {error}") from None
    if not isinstance(peft, dict) or peft.get("peft_type") != "LORA":
        raise file_error(config_path, "not a LoRA adapter (peft_type is not 'LORA')")
    for key, plain in (("use_rslora", False), ("use_dora", False), ("fan_in_fan_out", False),
                       ("bias", "none"), ("layers_to_transform", None), ("modules_to_save", None)):
        if peft.get(key) not in (plain, None):
            raise file_error(config_path, f"{key} = {peft[key]!r} is not supported (plain LoRA "
                                          f"has {plain!r})")
    for key in ("rank_pattern", "alpha_pattern"):
        if peft.get(key):
            raise file_error(config_path, f"{key} (per-layer ranks or alphas) is not supported")
    modules = peft.get("target_modules")
    ours = {theirs: mine for mine, theirs in HF_MODULES.items()}
    if not isinstance(modules, list) or any(m not in ours for m in modules):
        raise file_error(config_path, f"target_modules {modules!r}: we read a list of "
                                      f"{' '.join(ours)}")
    targets = [t for t in TARGETS if HF_MODULES[t] in modules]  # our order
    config = _check_config({"rank": peft.get("r"), "alpha": peft.get("lora_alpha"),
                            "dropout": peft.get("lora_dropout"), "targets": targets}, config_path)
    stored = read_safetensors(weights_path)
    by_peft_name = {}
    for target in targets:
        for layer_path in _planned_layers(model, [target]):
            for key in ADAPTER_TENSORS:
                by_peft_name[_peft_name(layer_path, key)] = f"{layer_path}.{key}"
    tensors = {}
    for name, tensor in stored.items():
        # PEFT sometimes keeps the adapter's name ("default") in tensor names.
        plain_name = name.replace(".default.weight", ".weight")
        if plain_name.endswith(".base_layer.weight"):
            raise file_error(weights_path, f"{name} is a whole base weight, not an adapter "
                                           "(PEFT's save_embedding_layers): save without it")
        if plain_name not in by_peft_name:
            raise file_error(weights_path, f"unexpected tensor {name}: not a LoRA tensor of "
                                           "this model's layers (an adapter for another model?)")
        ours_name = by_peft_name[plain_name]
        values = tensor.data if tensor.dtype != "BF16" else bfloat16_to_float32(tensor.data)
        values = np.asarray(values, dtype=np.float64 if tensor.dtype == "F64" else np.float32)
        order = _row_order(model, ours_name.rsplit(".", 1)[0]) if ours_name.endswith("lora_B") else None
        if order is not None and values.shape[0] == len(order):
            restored = np.empty_like(values)
            restored[order] = values  # hf = ours[order]
            values = restored
        tensors[ours_name] = values
    return config, tensors
