"""Download public corpora for users with internet (`tinyllama-np data fetch NAME`).

Each download is checked against a SHA-256 hash: the published one where known, otherwise
the hash recorded on the first download ("trust on first use"), verified on every later
use. Files land in a cache folder ($TINYLLAMA_NP_CACHE, default ~/.cache/tinyllama_np),
written under a temporary name and renamed only once complete and verified.

Preparing a corpus trains a byte-level BPE tokenizer on it and tokenises it once into
memory-mapped token files, so `tinyllama-np train --data NAME` starts at once.
"""

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text_atomically
from ..progress import progress_bar
from .data import prepare_token_files, read_text, split_documents


@dataclass(frozen=True)
class Source:
    url: str
    sha256: str = None  # None: not published; recorded on first download
    size: int = None
    separator: str = "\n\n"  # how documents are separated in the text


SOURCES = {
    # Karpathy's char-rnn data set: the works of Shakespeare, 1,115,394 bytes.
    "tinyshakespeare": Source(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1_115_394),
    # TinyStories (Eldan and Li, 2023), the validation split: about 19 MB of short stories.
    "tinystories": Source(
        url="https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt",
        separator="<|endoftext|>"),
}


def cache_root():
    return Path(os.environ.get("TINYLLAMA_NP_CACHE", Path.home() / ".cache" / "tinyllama_np"))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded_hashes(root):
    path = root / "hashes.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _record_hash(root, name, digest):
    hashes = _recorded_hashes(root)
    hashes[name] = digest
    write_text_atomically(root / "hashes.json", json.dumps(hashes, indent=1))


def expected_hash(name, root):
    return SOURCES[name].sha256 or _recorded_hashes(root).get(name)


def download(url, destination, expected_size=None, progress=True):
    """Stream url into destination (via a temporary file); return its SHA-256."""
    temporary = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(temporary, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or expected_size
            bar = progress_bar(total, unit="B", desc=destination.parent.name, enabled=progress,
                               unit_scale=True)
            for block in iter(lambda: response.read(1 << 16), b""):
                file.write(block)
                digest.update(block)
                if bar is not None:
                    bar.update(len(block))
            if bar is not None:
                bar.close()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        temporary.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise OSError(f"could not download {url}: {reason} (no internet? --url takes a mirror)") from None
    return temporary, digest.hexdigest()


def fetch(name, url=None, root=None, progress=True, log=print):
    """Download (unless cached and verified) the raw text of `name`; return its path."""
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(SOURCES)}")
    source, root = SOURCES[name], Path(root or cache_root())
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.txt"
    if raw.is_file():
        verify(name, root)
        log(f"{name}: cached at {raw}, sha256 verified")
        return raw
    temporary, digest = download(url or source.url, raw, source.size, progress)
    expected = expected_hash(name, root)
    if expected is not None and digest != expected:
        temporary.unlink()
        raise ValueError(f"{name}: the download's sha256 is {digest}, expected {expected}; "
                         "the file was not kept")
    os.replace(temporary, raw)
    if expected is None:
        _record_hash(root, name, digest)
        log(f"{name}: no published hash; recorded sha256 {digest} for later checks")
    log(f"{name}: downloaded to {raw}")
    return raw


def verify(name, root=None):
    """Check the cached raw file against its published or recorded hash."""
    root = Path(root or cache_root())
    raw = root / name / "raw.txt"
    if not raw.is_file():
        raise FileNotFoundError(f"{name} is not downloaded; run: tinyllama-np data fetch {name}")
    expected = expected_hash(name, root)
    digest = sha256_of(raw)
    if expected is not None and digest != expected:
        raise ValueError(f"{raw} has sha256 {digest}, expected {expected}: the cached file "
                         f"changed; delete it and fetch again")
    return raw


def prepare(name, vocab_size=2048, root=None, log=print):
    """Train a tokenizer on the cached text and tokenise it: folder with tokenizer and tokens."""
    from ..tokenizer import BPETokenizer
    root = Path(root or cache_root())
    raw = verify(name, root)
    folder = raw.parent
    documents = split_documents(read_text(raw), SOURCES[name].separator)
    tokenizer = BPETokenizer.train("\n\n".join(documents), vocab_size, progress=True)
    tokenizer.save(folder / "tokenizer.model")
    prepare_token_files(documents, tokenizer, folder, progress=True)
    log(f"{name}: {len(documents)} documents; tokenizer ({vocab_size} tokens) and token "
        f"files written to {folder}")
    return folder
