"""Hugging Face's tokenizer.json (the `tokenizers` library's format) for BPE models.

    {"model": {"type": "BPE", "vocab": {"Ġthe": 260, ...}, "merges": ["Ġ t", ...],
               "byte_fallback": false, "ignore_merges": false, ...},
     "normalizer": ..., "pre_tokenizer": ..., "post_processor": ..., "decoder": ...,
     "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": true, ...}, ...]}

Merges are "left right" strings in older files and ["left", "right"] pairs in newer ones.
Two families are read (see merges_bpe.py for how each encodes):

byte-level    pre_tokenizer ByteLevel, alone (GPT-2's split pattern) or after Split
              regexes (LLaMA 3) and Digits (SmolLM)
sentencepiece normalizer Prepend("▁") + Replace(" ", "▁") (LLaMA 2, TinyLlama), or
              pre_tokenizer Metaspace (newer exports), with byte_fallback

Anything else (WordPiece, Unigram, other normalizers) is refused with the part named.
BOS/EOS and the chat template are not in tokenizer.json: they come from the
tokenizer_config.json beside it, when there is one (BOS also from the post-processor).
"""

import json
import os

import regex

from .merges_bpe import SPACE_MARK, MergesBPETokenizer
from .patterns import GPT2_PATTERN

CONFIG_FILE = "tokenizer_config.json"


def file_error(path, message):
    """A ValueError whose message starts with the file it is about."""
    return ValueError(f"{os.fspath(path)}: {message}")


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise file_error(path, f"not valid JSON: {error}") from None


def _pre_splits(node, path):
    """(kind, split patterns, prefix) from the pre_tokenizer node."""
    if node is None:
        return None, [], "never"
    kind = node.get("type")
    if kind == "Sequence":
        kinds, patterns, prefix = set(), [], "never"
        for child in node.get("pretokenizers", []):
            child_kind, child_patterns, child_prefix = _pre_splits(child, path)
            kinds.add(child_kind)
            patterns += child_patterns
            prefix = child_prefix if child_prefix != "never" else prefix
        kinds.discard(None)
        if len(kinds) > 1:
            raise file_error(path, f"pre_tokenizer mixes {sorted(kinds)}")
        return (kinds.pop() if kinds else None), patterns, prefix
    if kind == "ByteLevel":
        return "byte_level", [GPT2_PATTERN] if node.get("use_regex", True) else [], \
            "first" if node.get("add_prefix_space") else "never"
    if kind == "Split":
        pattern = node.get("pattern") or {}
        if node.get("behavior") != "Isolated" or node.get("invert"):
            raise file_error(path, f"pre_tokenizer Split with behavior {node.get('behavior')!r}"
                                   f" invert {node.get('invert')!r} is not supported (we "
                                   "implement Isolated, not inverted)")
        if "Regex" in pattern:
            return None, [pattern["Regex"]], "never"
        if "String" in pattern:
            return None, [regex.escape(pattern["String"])], "never"
        raise file_error(path, f"pre_tokenizer Split pattern {pattern!r:.80} not understood")
    if kind == "Digits":
        return None, [r"\p{N}" if node.get("individual_digits") else r"\p{N}+"], "never"
    if kind == "Metaspace":
        if node.get("replacement", SPACE_MARK) != SPACE_MARK:
            raise file_error(path, "Metaspace with a replacement other than ▁ is not supported")
        scheme = node.get("prepend_scheme") or ("always" if node.get("add_prefix_space", True)
                                                else "never")
        return "sentencepiece", ["metaspace-split"] if node.get("split", True) else [], scheme
    raise file_error(path, f"pre_tokenizer type {kind!r} is not supported (we read ByteLevel, "
                           "Split, Digits, Metaspace and Sequences of them)")


def _normalizer(node, path):
    """"prepend" for LLaMA 2's Prepend("▁") + Replace(" ", "▁") normalizer, None for none."""
    if node is None:
        return None
    steps = node.get("normalizers", []) if node.get("type") == "Sequence" else [node]
    kinds = [step.get("type") for step in steps]
    if kinds == ["Prepend", "Replace"] and steps[0].get("prepend") == SPACE_MARK and \
            steps[1].get("pattern") == {"String": " "} and steps[1].get("content") == SPACE_MARK:
        return "prepend"
    if kinds == ["Replace"] and steps[0].get("pattern") == {"String": " "} and \
            steps[0].get("content") == SPACE_MARK:
        return "never"
    raise file_error(path, f"normalizer {kinds} is not supported (we read none, and "
                           "LLaMA 2's Prepend ▁ + Replace ' ' -> ▁)")


def _token_text(value):
    return value.get("content") if isinstance(value, dict) else value


def read_tokenizer_json(path):
    document = _read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("model"), dict):
        raise file_error(path, "not a tokenizer.json (no 'model' object)")
    model = document["model"]
    if model.get("type", "BPE") != "BPE" or "merges" not in model:
        raise file_error(path, f"model type {model.get('type')!r}: we read BPE tokenizers only")
    for option in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
        if model.get(option):
            raise file_error(path, f"BPE option {option} = {model[option]!r} is not supported")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise file_error(path, "model.vocab must map token strings to ids")
    merges = []
    for rank, merge in enumerate(model["merges"]):
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if not (isinstance(pair, list) and len(pair) == 2 and all(
                isinstance(part, str) and part for part in pair)):
            raise file_error(path, f"merge {rank} {merge!r:.60} is not a pair of tokens")
        merges.append(tuple(pair))
    added, special = {}, set()
    for entry in document.get("added_tokens") or []:
        if any(entry.get(option) for option in ("single_word", "lstrip", "rstrip")):
            raise file_error(path, f"added token {entry.get('content')!r} uses single_word / "
                                   "lstrip / rstrip, which we do not implement")
        added[entry["content"]] = entry["id"]
        if entry.get("special"):
            special.add(entry["content"])
    kind, patterns, prefix = _pre_splits(document.get("pre_tokenizer"), path)
    normalized_prefix = _normalizer(document.get("normalizer"), path)
    if normalized_prefix is not None:
        if kind is not None:
            raise file_error(path, "a SentencePiece normalizer with a pre_tokenizer")
        kind, prefix = "sentencepiece", normalized_prefix
    if kind is None:
        raise file_error(path, "neither ByteLevel nor SentencePiece-style (Metaspace / "
                               "Prepend+Replace): not a tokenizer we read")
    folder = os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, CONFIG_FILE)
    config = _read_json(config_path) if os.path.exists(config_path) else {}
    bos_text, eos_text = _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))
    processor_bos = _processor_bos(document.get("post_processor"))
    everything = {**vocab, **added}
    bos_text = bos_text or processor_bos
    try:
        tokenizer = MergesBPETokenizer(
            vocab, merges, kind,
            split_patterns=[] if kind == "sentencepiece" else patterns,
            added_tokens=added, special=special,
            bos_id=everything.get(bos_text), eos_id=everything.get(eos_text),
            add_bos=config.get("add_bos_token", processor_bos is not None) and bos_text is not None,
            ignore_merges=bool(model.get("ignore_merges")), prefix=prefix,
            split_on_mark=kind == "sentencepiece" and patterns == ["metaspace-split"],
            byte_fallback=bool(model.get("byte_fallback")),
            unk_id=everything.get(model.get("unk_token")))
    except ValueError as error:
        raise file_error(path, str(error)) from None
    template = config.get("chat_template")
    tokenizer.chat_template = template if isinstance(template, str) else None
    return tokenizer


def _processor_bos(node):
    """The token a TemplateProcessing post-processor puts first, if it is a special token
    (LLaMA's "<s>" / "<|begin_of_text|>"); None otherwise."""
    if not isinstance(node, dict):
        return None
    if node.get("type") == "Sequence":
        for child in node.get("processors", []):
            found = _processor_bos(child)
            if found:
                return found
        return None
    if node.get("type") != "TemplateProcessing":
        return None
    single = node.get("single") or []
    if single and "SpecialToken" in single[0]:
        return single[0]["SpecialToken"]["id"]
    return None
