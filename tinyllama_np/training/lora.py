"""Put LoRA adapters into a Llama (`apply_lora`), and fold them back in (`merge_lora`).

    model = tl.load_checkpoint("runs/tiny")
    tl.apply_lora(model, targets=("wq", "wv"), rank=8, alpha=16)
    model.params   # ... "layers.0.attention.wq.weight" (frozen), "layers.0.attention.wq.lora_A",
                   #     "layers.0.attention.wq.lora_B", ...
    model.grads    # only the adapters: every base weight is frozen, as in PEFT
    ... train ...
    tl.merge_lora(model)   # W += (alpha / r) B A in every adapted layer: a plain Llama again

The named projections of every block are replaced by LoRALinear layers that wrap the same
weight arrays (nothing is copied); the model, its blocks and their sub-modules list the
adapter tensors under the layer's name, so optimizers, clipping and checkpoints see them
like any parameter.
"""

import numpy as np

from ..nn.linear import Linear
from ..nn.lora import LoRALinear

# Target name -> where the layer lives in a block ("output" is the model's last projection).
TARGETS = {"wq": "attention", "wk": "attention", "wv": "attention", "wo": "attention",
           "w1": "feed_forward", "w2": "feed_forward", "w3": "feed_forward", "output": None}
ADAPTER_TENSORS = ("lora_A", "lora_B")


def layer_owners(model, target):
    """[(path, owners)] for every layer `target` names. owners: (module, name of the layer
    inside it) from the model down to the layer's direct parent, e.g. for layer 0's wq:
    (model, 'layers.0.attention.wq'), (block, 'attention.wq'), (attention, 'wq')."""
    if TARGETS[target] is None:
        return [("output", [(model, "output")])]
    group = TARGETS[target]
    found = []
    for i, block in enumerate(model.layers):
        path = f"layers.{i}.{group}.{target}"
        found.append((path, [(model, path), (block, f"{group}.{target}"),
                             (getattr(block, group), target)]))
    return found


def _check_targets(model, targets):
    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise ValueError("LoRA needs at least one target layer (e.g. wq wv)")
    for target in targets:
        if target not in TARGETS:
            raise ValueError(f"LoRA target {target!r} matches no layer: choose from "
                             f"{' '.join(TARGETS)}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"LoRA targets repeat: {targets}")
    if "output" in targets and model.config.tie_embeddings:
        raise ValueError("the output projection shares its weight with the token embedding "
                         "(tie_embeddings), so an adapter on it could not be merged: leave "
                         "'output' out of the targets")
    return targets


def lora_layers(model):
    """{path: LoRALinear} of the model's adapted layers (empty if none)."""
    layers = {}
    for target in TARGETS:
        for path, owners in layer_owners(model, target):
            parent, name = owners[-1]
            layer = getattr(parent, name)
            if isinstance(layer, LoRALinear):
                layers[path] = layer
    return layers


def apply_lora(model, targets=("wq", "wv"), rank=8, alpha=16, dropout=0.0, seed=0):
    """Freeze every parameter of `model` and add rank-`rank` adapters to the `targets`
    (any of wq wk wv wo w1 w2 w3 output) of every block. Returns the model (changed in place).

    The output equals the base model's until the adapters are trained (B starts at zero).
    """
    if lora_layers(model):
        raise ValueError("this model already has LoRA adapters (merge_lora first)")
    targets = _check_targets(model, targets)
    # Check everything before changing anything: a bad rank leaves the model as it was.
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
    for target in targets:
        for path, owners in layer_owners(model, target):
            parent, name = owners[-1]
            out_features, in_features = getattr(parent, name).params["weight"].shape
            if rank > min(out_features, in_features):
                raise ValueError(f"LoRA rank {rank} is larger than {path} "
                                 f"({out_features} x {in_features}) allows: at most "
                                 f"{min(out_features, in_features)}")
    model.freeze(list(model.params))
    for target_index, target in enumerate(targets):
        for layer_index, (path, owners) in enumerate(layer_owners(model, target)):
            parent, name = owners[-1]
            layer = LoRALinear(getattr(parent, name).params["weight"], rank, alpha, dropout,
                               seed=seed * 100003 + target_index * 1009 + layer_index)
            setattr(parent, name, layer)
            for owner, prefix in owners:
                for key in ADAPTER_TENSORS:
                    owner.params[f"{prefix}.{key}"] = layer.params[key]
                    owner.grads[f"{prefix}.{key}"] = layer.grads[key]
    model.lora_config = {"rank": int(rank), "alpha": float(alpha), "dropout": float(dropout),
                         "targets": targets}
    return model


def set_lora_training(model, training):
    """Dropout on the adapters' path on (training) or off (evaluation, generation)."""
    for layer in lora_layers(model).values():
        layer.training = training


def merge_lora(model):
    """Fold every adapter into its weight, W += (alpha / r) B A, and remove the adapters.

    The weights are changed in place; the model is a plain Llama again (whose parameters
    stay frozen: load the saved checkpoint to train it further). Returns the model.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("this model has no LoRA adapters to merge")
    for target in model.lora_config["targets"]:
        for path, owners in layer_owners(model, target):
            parent, name = owners[-1]
            layer = getattr(parent, name)
            weight = layer.params["weight"]
            weight[...] = layer.merged_weight()
            plain = Linear(weight)
            plain.grads.pop("weight")  # frozen, like the rest of the model
            setattr(parent, name, plain)
            for owner, prefix in owners:
                for key in ADAPTER_TENSORS:
                    del owner.params[f"{prefix}.{key}"], owner.grads[f"{prefix}.{key}"]
    del model.lora_config
    return model


def adapter_tensors(model):
    """{'layers.0.attention.wq.lora_A': array, ...}: the trainable part of a LoRA model."""
    return {f"{path}.{key}": layer.params[key]
            for path, layer in lora_layers(model).items() for key in ADAPTER_TENSORS}
