"""tokenizer.json and GGUF tokenizers against Hugging Face's `tokenizers` library, token for
token. The tokenizers are trained here, offline, on a small mixed-language text."""

import json
import os

import pytest

import tinyllama_np as tl
from tinyllama_np.tokenizer.patterns import LLAMA3_PATTERN

pytestmark = pytest.mark.reference  # counted in the run's summary (conftest.py)
tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex, decoders, normalizers, pre_tokenizers  # noqa: E402
from tokenizers.models import BPE  # noqa: E402
from tokenizers.trainers import BpeTrainer  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = ("Once upon a time, a little girl named Lily found 12 shiny stones in the park. "
          "She said: \"I'm happy!\" and they're 3.14159 times better.\n\n"
          "def add(a, b):\n    return a + b  # code, with    spaces\n"
          "从前有一个小女孩，她叫莉莉。她很喜欢在公园里玩。😀🎉 ") * 20
TEXTS = [
    "Hello world! The capital of France is Paris.",
    "  leading spaces, trailing spaces   ",
    "line one\nline two\n\n\n   indented\ttab",
    "她很喜欢在公园里玩，然后回家吃饭。",
    "emoji 😀🎉👩‍👩‍👧 and rare ǅ ẞ characters ☃",
    "numbers 1234567 and 3.14159, 1,000,000",
    "def f(x):\n    return x ** 2  # square\n",
    "<|im_start|>user\nhi<|im_end|> <|endoftext|>",
    "I'm sure they'll say we've done it, isn't it? DON'T",
    "",
    " ",
    "x" * 300 + " " * 50 + "y",
]


def trained(pre_tokenizer, tmp_path, name, decoder=None, normalizer=None, **bpe):
    tokenizer = tokenizers.Tokenizer(BPE(**bpe))
    tokenizer.pre_tokenizer = pre_tokenizer
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.decoder = decoder or decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet() if decoder is None else []
    trainer = BpeTrainer(vocab_size=600, special_tokens=SPECIALS, initial_alphabet=alphabet,
                         show_progress=False)
    tokenizer.train_from_iterator([CORPUS], trainer)
    path = tmp_path / name
    path.mkdir()
    tokenizer.save(str(path / "tokenizer.json"))
    return tokenizer, path / "tokenizer.json"


def check_same(reference, ours):
    for text in TEXTS:
        reference.encode_special_tokens = False
        expected = reference.encode(text, add_special_tokens=False).ids
        assert ours.encode(text, allowed_special="all") == expected, text
        reference.encode_special_tokens = True
        expected = reference.encode(text, add_special_tokens=False).ids
        assert ours.encode(text) == expected, text
        assert ours.decode(expected) == reference.decode(expected, skip_special_tokens=False), text


@pytest.mark.parametrize("variant", ["gpt2", "llama3", "smollm"])
def test_byte_level_bpe_matches_tokenizers(variant, tmp_path):
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=variant == "gpt2")
    pre = {"gpt2": byte_level,
           "llama3": pre_tokenizers.Sequence([
               pre_tokenizers.Split(Regex(LLAMA3_PATTERN), "isolated"), byte_level]),
           "smollm": pre_tokenizers.Sequence([
               pre_tokenizers.Digits(individual_digits=True),
               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])}[variant]
    reference, path = trained(pre, tmp_path, variant, ignore_merges=variant == "llama3")
    ours = tl.load_tokenizer(path)
    assert isinstance(ours, tl.MergesBPETokenizer)
    assert ours.vocab_size == reference.get_vocab_size()
    check_same(reference, ours)
    assert tl.load_tokenizer(path.parent).vocab_size == ours.vocab_size  # the folder


def sentencepiece_style(tmp_path, name, normalizer, pre_tokenizer, specials=SPECIALS):
    """A LLaMA 2-style BPE: characters, merges, and <0x00>..<0xFF> for byte fallback."""
    base, _ = trained(pre_tokenizers.Metaspace(), tmp_path, name + "_base",
                      decoder=decoders.Metaspace())
    vocab = base.get_vocab()
    merges = json.loads(base.to_str())["model"]["merges"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    tokenizer = tokenizers.Tokenizer(BPE(vocab=vocab, merges=merges, byte_fallback=True,
                                         fuse_unk=True))
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                           decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens(specials)
    path = tmp_path / f"{name}.json"
    tokenizer.save(str(path))
    return tokenizer, path


@pytest.mark.parametrize("style", ["llama2-normalizer", "metaspace-first"])
def test_sentencepiece_bpe_with_byte_fallback_matches_tokenizers(style, tmp_path):
    if style == "llama2-normalizer":
        normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
        pre = None
    else:
        normalizer, pre = None, pre_tokenizers.Metaspace(prepend_scheme="first", split=True)
    reference, path = sentencepiece_style(tmp_path, style, normalizer, pre)
    ours = tl.load_tokenizer(path)
    assert ours.kind == "sentencepiece"
    # Characters the corpus lacks (emoji, ẞ, ☃) must take the byte-fallback path.
    assert any(ours.byte_ids[b] in ours.encode("☃") for b in "☃".encode())
    check_same(reference, ours)


def test_merges_as_pairs_and_bad_files(tmp_path):
    reference, path = trained(pre_tokenizers.ByteLevel(add_prefix_space=False), tmp_path, "p")
    document = json.loads(path.read_text())
    document["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m
                                   for m in document["model"]["merges"]]
    path.write_text(json.dumps(document))
    check_same(reference, tl.load_tokenizer(path))
    bad = json.loads(json.dumps(document))
    bad["model"]["merges"].append(["Ġnot", "avocabularytoken"])
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tl.load_tokenizer(path)
    for change, match in [
            (lambda d: d["model"].update(type="WordPiece"), "BPE tokenizers only"),
            (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "'Whitespace'"),
            (lambda d: d.update(normalizer={"type": "NFKC"}), "normalizer"),
            (lambda d: d["added_tokens"][0].update(lstrip=True), "lstrip"),
            (lambda d: d.pop("model"), "no 'model'")]:
        bad = json.loads(json.dumps(document))
        change(bad)
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match) as info:
            tl.load_tokenizer(path)
        assert str(path) in str(info.value)


SMOLLM2 = os.environ.get("TINYLLAMA_NP_SMOLLM2")


@pytest.mark.skipif(not SMOLLM2 or not os.path.isfile(SMOLLM2),
                    reason="set TINYLLAMA_NP_SMOLLM2 to SmolLM2-135M-Instruct's GGUF file")
def test_smollm2_gguf_tokenizer_matches_tokenizers_built_from_its_vocabulary():
    """The reference is a `tokenizers` BPE made from the GGUF file's own tokens and merges,
    with the pre-tokenizer of SmolLM2's tokenizer.json (digits alone, then ByteLevel):
    this checks our encoder, the "smollm" split patterns and the special tokens."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(SMOLLM2)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ")) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    reference = tokenizers.Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)},
                                         merges=merges))
    reference.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    reference.decoder = decoders.ByteLevel()
    reference.add_special_tokens([t for t, kind in zip(tokens, types) if kind == 3])
    ours = tl.load_tokenizer(SMOLLM2)
    assert ours.bos_id == 1 and ours.eos_id == 2 and not ours.add_bos
    check_same(reference, ours)
    assert "<|im_start|>" in ours.chat_template


def test_generate_on_a_hugging_face_folder_finds_its_tokenizer_json(tmp_path, capsys):
    from tinyllama_np.cli import main
    reference, path = trained(pre_tokenizers.ByteLevel(add_prefix_space=False), tmp_path, "hf")
    config = tl.LlamaConfig(vocab_size=reference.get_vocab_size(), dim=16, n_layers=1,
                            n_heads=2, max_seq_len=32)
    tl.save_checkpoint(tl.Llama(config, seed=0), path.parent, format="hf")
    assert main(["generate", "--checkpoint", str(path.parent), "--prompt", "Once upon",
                 "--strategy", "greedy", "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("Once upon")
