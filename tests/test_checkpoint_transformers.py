"""Our Hugging Face files against the real thing: transformers and the safetensors package.

Neither is a dependency (nor installed by the test extra): these tests are skipped unless
both are importable, e.g. `pip install torch transformers safetensors`. They are the
reference check behind huggingface.py: a folder we write gives transformers' LlamaForCausalLM
the same logits as our model, and a folder transformers writes (single file, sharded,
bfloat16) loads here to the same logits.
"""

import numpy as np
import pytest

pytestmark = pytest.mark.reference  # counted in the run's summary (conftest.py)
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import tinyllama_np as tl  # noqa: E402
from tinyllama_np.checkpoint import read_safetensors, write_safetensors  # noqa: E402

CONFIGS = {
    "gqa_untied": tl.LlamaConfig(vocab_size=61, dim=48, n_layers=2, n_heads=6, n_kv_heads=2,
                                 hidden_dim=72, max_seq_len=32, norm_eps=1e-6,
                                 rope_theta=500000.0),
    "mha_tied": tl.LlamaConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, max_seq_len=24,
                               tie_embeddings=True),
}


def hf_logits(folder, tokens):
    model = transformers.LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(tokens)).logits.numpy()


@pytest.mark.parametrize("name", CONFIGS)
def test_transformers_reads_our_folder(name, tmp_path):
    model = tl.Llama(CONFIGS[name], seed=2)
    tokens = np.random.default_rng(0).integers(0, CONFIGS[name].vocab_size, (2, 11))
    tl.save_checkpoint(model, tmp_path / "hf", format="hf")
    np.testing.assert_allclose(hf_logits(tmp_path / "hf", tokens), model.forward(tokens),
                               rtol=0, atol=2e-5)


def random_transformers_model(config, seed):
    torch.manual_seed(seed)
    hf_config = transformers.LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.dim,
        intermediate_size=config.hidden_dim, num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads, num_key_value_heads=config.n_kv_heads,
        max_position_embeddings=config.max_seq_len, rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_theta, tie_word_embeddings=config.tie_embeddings)
    model = transformers.LlamaForCausalLM(hf_config)
    with torch.no_grad():  # norm weights are ones at init: make them informative
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("layout", ["single", "sharded", "bfloat16"])
def test_we_read_transformers_folders(name, layout, tmp_path):
    config = CONFIGS[name]
    hf_model = random_transformers_model(config, seed=5)
    if layout == "bfloat16":
        hf_model = hf_model.to(torch.bfloat16)
    hf_model.save_pretrained(tmp_path / "hf", max_shard_size="20KB" if layout == "sharded"
                             else "5GB")
    if layout == "sharded":
        assert (tmp_path / "hf" / "model.safetensors.index.json").exists()
    model = tl.load_checkpoint(tmp_path / "hf")
    assert model.config == config
    tokens = np.random.default_rng(1).integers(0, config.vocab_size, (2, 9))
    with torch.no_grad():
        expected = hf_model.float()(torch.tensor(tokens)).logits.numpy()
    np.testing.assert_allclose(model.forward(tokens), expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_safetensors_package_agrees_with_our_parser(dtype, tmp_path):
    rng = np.random.default_rng(3)
    tensors = {"a": rng.standard_normal((3, 5)).astype(np.float32),
               "b.weight": rng.standard_normal(7).astype(np.float32)}
    torch_dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]

    def rounded(value):  # what torch makes of a float32 array in this dtype, back in float32
        return torch.tensor(value).to(torch_dtype).float().numpy()

    write_safetensors(tmp_path / "ours.safetensors", tensors, dtype)
    theirs = safetensors_torch.load_file(tmp_path / "ours.safetensors")
    for name, value in tensors.items():
        assert theirs[name].dtype == torch_dtype
        np.testing.assert_array_equal(theirs[name].float().numpy(), rounded(value))

    safetensors_torch.save_file({name: torch.tensor(value).to(torch_dtype)
                                 for name, value in tensors.items()},
                                tmp_path / "theirs.safetensors")
    ours = read_safetensors(tmp_path / "theirs.safetensors")
    assert set(ours) == set(tensors)
    for name, stored in ours.items():
        out = np.empty(stored.shape, np.float32)
        stored.copy_into(out)
        np.testing.assert_array_equal(out, rounded(tensors[name]))
