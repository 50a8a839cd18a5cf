"""From a text corpus to batches of (tokens, targets) for causal language modelling.

1. Split the text into documents (stories), encode each as  BOS + text + EOS.
2. Keep the last documents apart for validation; concatenate the rest.
3. Save the token ids once, as .npy files, and read them back memory-mapped (np.load with
   mmap_mode): a batch then reads only the pages it touches, however large the corpus.
4. A batch is batch_size windows of seq_len + 1 consecutive tokens; the model reads the
   first seq_len and must predict each next one (targets = tokens shifted by one). Given the
   documents' bounds, each window starts in a random document, at its BOS when the
   document fits (so the model reads every story from the sentence that introduces its
   characters); otherwise windows start at random offsets.
"""

from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..progress import progress_bar

STORY_SEPARATOR = "\n\n"  # the bundled corpus: stories separated by a blank line


def split_documents(text, separator=STORY_SEPARATOR):
    documents = [doc.strip() for doc in text.split(separator)]
    return [doc for doc in documents if doc]


def read_text(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"data file {path} is not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise ValueError(f"data file {path} is empty")
    return text


def encode_documents(documents, tokenizer, progress=False, desc="encoding"):
    """One flat array: BOS doc1 EOS BOS doc2 EOS ... (uint16 when the vocabulary fits)."""
    dtype = np.uint16 if tokenizer.vocab_size <= 2 ** 16 else np.uint32
    ids = []
    bar = progress_bar(len(documents), unit="documents", desc=desc, enabled=progress)
    for doc in documents:
        ids.append(tokenizer.bos_id)
        ids.extend(tokenizer.encode(doc))
        ids.append(tokenizer.eos_id)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return np.array(ids, dtype=dtype)


def prepare_token_files(documents, tokenizer, out_dir, val_fraction=0.05, progress=False):
    """Write out_dir/train.npy and out_dir/val.npy; return their paths.

    The split is by whole documents (the last ones go to validation), so no story is half
    in training and half in validation.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(documents) < 2:
        raise ValueError(f"need at least 2 documents to split into training and validation, "
                         f"got {len(documents)}")
    n_val = max(1, int(round(len(documents) * val_fraction)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, docs in (("train", documents[:-n_val]), ("val", documents[-n_val:])):
        paths[split] = out_dir / f"{split}.npy"
        tokens = encode_documents(docs, tokenizer, progress, desc=f"encoding the {split} split")
        save_array_atomically(paths[split], tokens)
    return paths


def save_array_atomically(path, array):
    with atomic_write(path) as file:
        np.save(file, array, allow_pickle=False)


def load_tokens(path, vocab_size=None):
    """The token ids of a prepared .npy file, memory-mapped (read lazily, never copied whole)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file {path} does not exist")
    try:
        tokens = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"token file {path} is not a valid .npy array: {error}") from None
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.unsignedinteger):
        raise ValueError(f"token file {path} must hold a 1-D array of unsigned integers, "
                         f"got {tokens.dtype} of shape {tokens.shape}")
    if vocab_size is not None and len(tokens) and int(tokens.max()) >= vocab_size:
        raise ValueError(f"token file {path} holds id {int(tokens.max())}, outside the "
                         f"vocabulary of {vocab_size}")
    return tokens


def document_bounds(tokens, bos_id):
    """Where the documents begin, then where the corpus ends: document d is
    tokens[bounds[d]:bounds[d + 1]]. A document begins at each BOS, and at 0 if text
    precedes the first."""
    starts = np.flatnonzero(np.asarray(tokens) == bos_id)
    if len(starts) == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return np.append(starts, len(tokens))


def random_batch(tokens, batch_size, seq_len, rng, doc_bounds=None):
    """batch_size random windows: (inputs, targets), both int64 (B, T), targets shifted by one.

    Without doc_bounds a window may start anywhere. With them (document_bounds), a window
    starts in a document drawn uniformly: at its first token if the document is at most
    seq_len + 1 tokens long, else at a random offset that keeps the window inside it. A short
    document's window runs on into the next one, which it also reads from its start. A window
    that would run past the corpus's end starts earlier, so that it ends there.
    """
    if len(tokens) < seq_len + 1:
        raise ValueError(f"the corpus has {len(tokens)} tokens, fewer than one sequence of "
                         f"{seq_len} + 1: use a shorter --seq-len or more data")
    last_start = len(tokens) - seq_len - 1
    if doc_bounds is None:
        starts = rng.integers(0, last_start + 1, size=batch_size)
    else:
        doc = rng.integers(0, len(doc_bounds) - 1, size=batch_size)
        begin, end = doc_bounds[doc], doc_bounds[doc + 1]
        spare = np.maximum(end - begin - (seq_len + 1), 0)
        starts = np.minimum(begin + rng.integers(0, spare + 1), last_start)
    windows = np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int64)
    return windows[:, :-1], windows[:, 1:]
