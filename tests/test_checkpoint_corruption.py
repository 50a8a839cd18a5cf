"""Bad and damaged checkpoints: a clear error naming the file, fast, with no huge allocation.

The random test flips and truncates bytes of valid files and sorts every outcome into:

* error      ValueError or OSError (the CLI prints these as one line); the message names
             the file.
* identical  the same config and bit-identical weights: the damage hit bytes the loader
             does not use (zip timestamps, JSON whitespace, llama2.c's RoPE tables, header
             padding).
* weights    the same config and parameter shapes, with at most as many weights changed as
             bytes were damaged. Honest about what formats can promise: llama2.c and
             safetensors files carry no checksum, so a flipped byte inside a float is just a
             different float. Our npz format has CRC-32 checksums, and there this outcome
             is not allowed.
* max_seq_len  llama2.c version 1 only: the header's seq_len is not cross-checked by anything
             else in the file (the legacy format is: its RoPE tables have seq_len rows).
             GGUF likewise: its context_length, rms epsilon and rope freq_base.

Truncation must always be an error. Memory is traced: a mutated file may not make the loader
allocate much more than an intact one (no 100 GB allocations from a corrupt size field).
"""

import json
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.checkpoint import write_safetensors

CONFIG = tl.LlamaConfig(vocab_size=19, dim=16, n_layers=2, n_heads=4, n_kv_heads=2,
                        hidden_dim=24, max_seq_len=8)
MUTATIONS = 120
GGUF_UNCHECKED = {"max_seq_len", "norm_eps", "rope_theta"}
TRUNCATIONS = 40


@pytest.fixture(scope="module")
def model():
    return tl.Llama(CONFIG, seed=3)


def write(model, folder, form):
    """A valid checkpoint in `form`; returns (path to load, the file to damage)."""
    if form == "gguf":  # written by the gguf package (llama.cpp's writer), F16 matrices
        gguf = pytest.importorskip("gguf")
        from gguf_files import write_gguf_model
        write_gguf_model(gguf, model, folder / "model.gguf", "F16")
        return folder / "model.gguf", folder / "model.gguf"
    if form == "hf":
        tl.save_checkpoint(model, folder / "hf", format="hf", dtype="bfloat16")
        return folder / "hf", folder / "hf" / "model.safetensors"
    path = folder / "checkpoint"
    tl.save_checkpoint(model, path, format=form)
    return path, path


def header_positions(form, path):
    """The byte positions of a file that describe rather than hold the weights."""
    data = path.read_bytes()
    if form == "llama2c":
        return np.arange(28)
    if form == "llama2c-v1":
        return np.arange(256)
    if form == "hf":
        return np.arange(8 + struct.unpack("<Q", data[:8])[0])
    if form == "gguf":  # everything before the first tensor's data
        from tinyllama_np.checkpoint.gguf import read_gguf
        return np.arange(min(begin for _, _, begin in read_gguf(path)[1].values()))
    with zipfile.ZipFile(path) as archive:  # npz: local headers, .npy headers, directory
        starts = [info.header_offset for info in archive.infolist()]
        directory = archive.start_dir
    return np.concatenate([np.arange(start, start + 200) for start in starts]
                          + [np.arange(directory, len(data))])


def outcome(path, reference):
    try:
        loaded = tl.load_checkpoint(path)
    except (ValueError, OSError) as error:
        assert os.path.basename(path) in str(error) or "hf" in str(error), str(error)
        return "error", 0
    if loaded.config != reference.config:
        differing = [k for k, v in loaded.config.to_dict().items()
                     if v != reference.config.to_dict()[k]]
        return ",".join(differing), 0
    changed = sum(int(np.sum(~(loaded.params[name] == value) & ~(
        np.isnan(loaded.params[name]) & np.isnan(value)))) for name, value in
                  reference.params.items())
    return ("identical" if changed == 0 else "weights"), changed


@pytest.mark.parametrize("form", ["npz", "llama2c", "llama2c-v1", "hf", "gguf"])
def test_random_damage_gives_clean_errors(form, model, tmp_path):
    path, target = write(model, tmp_path, form)
    reference = tl.load_checkpoint(path)  # for hf: the bf16-rounded weights
    original = target.read_bytes()
    headers = header_positions(form, target)
    rng = np.random.default_rng(2024)
    tracemalloc.start()
    _, baseline_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    tl.load_checkpoint(path)
    _, intact_peak = tracemalloc.get_traced_memory()
    seen = {}
    try:
        for trial in range(MUTATIONS + TRUNCATIONS):
            damaged = bytearray(original)
            if trial < MUTATIONS:
                n_bytes = int(rng.integers(1, 4))
                # Half of the damage goes to the headers (most bytes are weights).
                for _ in range(n_bytes):
                    position = rng.choice(headers) if rng.random() < 0.5 else \
                        rng.integers(0, len(original))
                    damaged[position] ^= int(rng.integers(1, 256))
            else:
                n_bytes = 0
                del damaged[int(rng.integers(0, len(original))):]
            target.write_bytes(bytes(damaged))
            tracemalloc.reset_peak()
            kind, changed = outcome(path, reference)
            _, peak = tracemalloc.get_traced_memory()
            assert peak - baseline_peak < 4 * (intact_peak - baseline_peak) + (1 << 20), \
                f"trial {trial}: allocated {peak - baseline_peak} bytes"
            if trial >= MUTATIONS:
                assert kind == "error", f"truncation to {len(damaged)} bytes loaded: {kind}"
            elif kind == "weights":
                assert form != "npz", "npz checksums must catch changed weights"
                assert changed <= n_bytes
            elif kind not in ("error", "identical"):
                # GGUF's metadata numbers are not cross-checked by anything else in the file.
                assert (form == "llama2c-v1" and kind == "max_seq_len") or (
                    form == "gguf" and set(kind.split(",")) <= GGUF_UNCHECKED), kind
            seen[kind] = seen.get(kind, 0) + 1
    finally:
        tracemalloc.stop()
    print(form, seen)
    assert seen.get("error", 0) > TRUNCATIONS  # the damage did reach the structure


# ------------------------------------------------------------------- specific bad inputs

def error_for(path, match):
    with pytest.raises(ValueError, match=match) as info:
        tl.load_checkpoint(path)
    assert os.fspath(path) in str(info.value) or os.path.basename(path) in str(info.value)
    return str(info.value)


def test_missing_empty_and_unrecognisable_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        tl.load_checkpoint(tmp_path / "nope.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    error_for(tmp_path / "empty.bin", "empty")
    (tmp_path / "text.bin").write_bytes(b"hello, this is not a model\n" * 3)
    error_for(tmp_path / "text.bin", "llama2.c")
    error_for(tmp_path, "neither a Hugging Face model")


def test_llama2c_header_claiming_a_huge_model_fails_before_allocating(tmp_path):
    header = struct.pack("<7i", 1 << 15, 1 << 17, 1 << 10, 1 << 7, 1 << 7, 1 << 20, 1 << 12)
    (tmp_path / "huge.bin").write_bytes(header + bytes(4096))
    tracemalloc.start()
    try:
        error_for(tmp_path / "huge.bin", "describes a file of")
        assert tracemalloc.get_traced_memory()[1] < 1 << 24
    finally:
        tracemalloc.stop()


def test_llama2c_bad_headers(model, tmp_path):
    tl.save_checkpoint(model, tmp_path / "v1.bin", format="llama2c-v1")
    data = bytearray((tmp_path / "v1.bin").read_bytes())
    struct.pack_into("<i", data, 4, 2)
    (tmp_path / "v2.bin").write_bytes(bytes(data))
    error_for(tmp_path / "v2.bin", "Q8_0")
    struct.pack_into("<i", data, 4, 1)
    struct.pack_into("<i", data, 32, 1 << 30)  # seq_len: would be a 16 GB RoPE table
    (tmp_path / "long.bin").write_bytes(bytes(data))
    error_for(tmp_path / "long.bin", "max_seq_len")
    legacy = struct.pack("<7i", 16, 24, 2, 3, 3, 19, 8)  # 16 is not divisible by 3 heads
    (tmp_path / "heads.bin").write_bytes(legacy + bytes(4000))
    error_for(tmp_path / "heads.bin", "divisible")


def test_safetensors_header_problems(model, tmp_path):
    tl.save_checkpoint(model, tmp_path, format="hf")
    weights = tmp_path / "model.safetensors"
    good = weights.read_bytes()
    header_size = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + header_size])

    def with_header(new_header, data=good[8 + header_size:]):
        text = json.dumps(new_header).encode()
        weights.write_bytes(struct.pack("<Q", len(text)) + text + data)

    weights.write_bytes(struct.pack("<Q", 1 << 60) + good[8:])
    error_for(tmp_path, "header claims")
    weights.write_bytes(good[:8] + b"\xff" + good[9:])
    error_for(tmp_path, "not valid JSON")
    name = "model.layers.1.mlp.up_proj.weight"
    changed = json.loads(json.dumps(header))
    changed[name]["dtype"] = "I64"
    with_header(changed)
    error_for(tmp_path, "dtype 'I64' is not supported")
    changed = json.loads(json.dumps(header))
    changed[name]["data_offsets"][1] += 1 << 40
    with_header(changed)
    error_for(tmp_path, "outside")
    changed = json.loads(json.dumps(header))
    changed[name]["shape"] = [24, 15]
    with_header(changed)
    error_for(tmp_path, "needs")
    changed = json.loads(json.dumps(header))
    begin, end = changed[name]["data_offsets"]
    changed["extra"] = {"dtype": "F32", "shape": [2], "data_offsets": [begin, begin + 8]}
    with_header(changed)
    error_for(tmp_path, "overlap")
    with_header(header, good[8 + header_size:] + b"trailing")
    error_for(tmp_path, "trailing")
    # A consistent file whose shapes disagree with config.json.
    tensors = {n: np.zeros(h["shape"], np.float32) for n, h in header.items()
               if n != "__metadata__"}
    tensors["model.norm.weight"] = np.zeros(17, np.float32)
    write_safetensors(weights, tensors)
    error_for(tmp_path, r"model.norm.weight has shape \(17,\), but config.json")
    del tensors["model.norm.weight"]
    write_safetensors(weights, tensors)
    error_for(tmp_path, "model.norm.weight is missing")
    tensors["model.norm.weight"] = np.zeros(16, np.float32)
    tensors["model.layers.0.self_attn.q_proj.bias"] = np.zeros(16, np.float32)
    write_safetensors(weights, tensors)
    error_for(tmp_path, "unexpected tensor model.layers.0.self_attn.q_proj.bias")


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("hidden_size"), "lacks the field 'hidden_size'"),
    (lambda c: c.update(num_hidden_layers="2"), "num_hidden_layers = '2'"),
    (lambda c: c.update(model_type="mistral", architectures=["MistralForCausalLM"]),
     "LLaMA models only"),
    (lambda c: c.update(architectures=["LlamaForSequenceClassification"]), "LLaMA models only"),
    (lambda c: [c.pop("model_type"), c.pop("architectures")], "not recognisably"),
    (lambda c: c.update(rope_scaling={"rope_type": "llama3", "factor": 8.0}), "'llama3'"),
    (lambda c: c.update(rope_parameters={"rope_type": "yarn"}), "'yarn'"),
    (lambda c: c.update(hidden_act="gelu"), "hidden_act"),
    (lambda c: c.update(attention_bias=True), "attention_bias"),
    (lambda c: c.update(head_dim=8), "head_dim"),
    (lambda c: c.update(rms_norm_eps=-1), "rms_norm_eps"),
    (lambda c: c.update(tie_word_embeddings="yes"), "tie_word_embeddings"),
    (lambda c: c.update(max_position_embeddings=1 << 40), "max_seq_len"),
    (lambda c: [c.pop("head_dim"), c.update(num_attention_heads=5)], "divisible"),
])
def test_bad_config_json(change, match, model, tmp_path):
    tl.save_checkpoint(model, tmp_path, format="hf")
    config = json.loads((tmp_path / "config.json").read_text())
    change(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    message = error_for(tmp_path, match)
    assert "config.json" in message


def test_hf_folder_problems(model, tmp_path):
    tl.save_checkpoint(model, tmp_path, format="hf")
    (tmp_path / "config.json").write_text("{not json")
    error_for(tmp_path, "not valid JSON")
    tl.save_checkpoint(model, tmp_path, format="hf")
    os.rename(tmp_path / "model.safetensors", tmp_path / "pytorch_model.bin")
    error_for(tmp_path, "pickles")
    index = {"weight_map": {"model.norm.weight": "../../etc/passwd"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    error_for(tmp_path / "model.safetensors.index.json", "not a file name in this folder")
    os.remove(tmp_path / "config.json")
    error_for(tmp_path / "model.safetensors.index.json", "no config.json")


def test_npz_problems(model, tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    error_for(tmp_path / "plain.npz", "__config__")
    tl.save_checkpoint(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        arrays = dict(archive)
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    error_for(tmp_path / "compressed.npz", "compressed")
    arrays["layers.0.ffn_norm.weight"] = np.zeros(15, np.float32)
    np.savez(tmp_path / "shape.npz", **arrays)
    error_for(tmp_path / "shape.npz", r"layers.0.ffn_norm.weight has shape \(15,\)")
    arrays["layers.0.ffn_norm.weight"] = np.zeros(16, np.int32)
    np.savez(tmp_path / "ints.npz", **arrays)
    error_for(tmp_path / "ints.npz", "dtype int32")
    arrays["layers.0.ffn_norm.weight"] = np.zeros(16, np.float32)
    stored = json.loads(arrays["__config__"].tobytes())
    stored["config"]["dim"] = 16.5
    arrays["__config__"] = np.frombuffer(json.dumps(stored).encode(), np.uint8)
    np.savez(tmp_path / "config.npz", **arrays)
    error_for(tmp_path / "config.npz", "dim = 16.5")
    with zipfile.ZipFile(tmp_path / "m.npz", "a") as archive:
        archive.writestr("extra.npy", b"")
    error_for(tmp_path / "m.npz", "unexpected member extra.npy")
