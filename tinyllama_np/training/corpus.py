"""The text a training run reads, and its tokenizer: the bundled stories, a fetched corpus, or a file.

The bundled stories live in the source checkout's `data/` folder (`data/stories.txt` and the
BPE tokenizer trained on it, `data/tokenizer.model`). A package installed from a wheel
(`pip install .`, `pip install git+URL`) has no `data/` folder, so on first use the same two
files are made again, bit for bit, from the story grammar (seed CORPUS_SEED) and the
tokenizer trainer, in the cache folder; their SHA-256 hashes below prove they are the
committed files (`tests/test_corpus.py` checks the hashes against `data/`).
"""

from pathlib import Path

from ..stories import CORPUS_SEED, CORPUS_STORIES, split_stories, write_corpus
from ..tokenizer import BPETokenizer, load_tokenizer
from . import fetch
from .data import read_text, split_documents

BUNDLED_NAME = "stories"
BUNDLED_VOCAB_SIZE = 2048
SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]
BUNDLED_HASHES = {
    "stories.txt": "a510addbfc49120f76c91b2336acfcc7491b9d3bb7ddae5e7fc75b265c6dd50c",
    "tokenizer.model": "2675c8af725dd9aa2d9712df654e3d99a56b04cb6884e057171ff4a822021a5b",
    "tokenizer.model.json": "66f4f7b74cc02c26a031bbde867c5e12d0dc99765c6803c901b984c96d79606b",
}


def bundled_folder(log=print):
    """The folder holding stories.txt and tokenizer.model: data/ in a checkout, else the cache."""
    checkout_data = SOURCE_CHECKOUT / "data"
    if (SOURCE_CHECKOUT / "setup.cfg").is_file() and (checkout_data / "stories.txt").is_file():
        return checkout_data
    folder = fetch.cache_root() / BUNDLED_NAME
    if all(_has_hash(folder / name, digest) for name, digest in BUNDLED_HASHES.items()):
        return folder
    log("this installation has no data/ folder: making the bundled stories and their "
        f"tokenizer from the story grammar in {folder} (once, a few seconds)")
    folder.mkdir(parents=True, exist_ok=True)
    write_corpus(folder / "stories.txt", CORPUS_STORIES, CORPUS_SEED)
    tokenizer = BPETokenizer.train(read_text(folder / "stories.txt"), BUNDLED_VOCAB_SIZE)
    tokenizer.save(folder / "tokenizer.model")
    for name, digest in BUNDLED_HASHES.items():
        if not _has_hash(folder / name, digest):
            raise ValueError(f"{folder / name} does not match the committed data/{name} "
                             "(sha256 differs): this version's story grammar or tokenizer "
                             "trainer no longer reproduces the bundled corpus")
    return folder


def _has_hash(path, digest):
    return path.is_file() and fetch.sha256_of(path) == digest


def resolve_corpus(data, vocab_size, log=print):
    """(documents, tokenizer, is_bundled_stories) for --data: 'stories', a fetched name, or a file."""
    if data == BUNDLED_NAME:
        folder = bundled_folder(log)
        documents = split_stories(read_text(folder / "stories.txt"))
        return documents, load_tokenizer(folder / "tokenizer.model"), True
    if data in fetch.SOURCES:
        raw = fetch.verify(data)
        tokenizer_path = raw.parent / "tokenizer.model"
        if not tokenizer_path.is_file():
            raise FileNotFoundError(f"{data} is downloaded but not prepared; run: tinyllama-np data fetch {data}")
        documents = split_documents(read_text(raw), fetch.SOURCES[data].separator)
        return documents, load_tokenizer(tokenizer_path), False
    documents = split_documents(read_text(data))
    log(f"training a {vocab_size}-token BPE tokenizer on {data}")
    return documents, BPETokenizer.train("\n\n".join(documents), vocab_size, progress=True), False
