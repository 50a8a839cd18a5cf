"""`data fetch` against a local HTTP server on 127.0.0.1: no test touches the internet."""

import functools
import http.server
import threading

import numpy as np
import pytest

from tinyllama_np.training import fetch as fetch_module
from tinyllama_np.training.data import load_tokens
from tinyllama_np.tokenizer import BPETokenizer

STORIES = "<|endoftext|>".join(
    f"\nOnce upon a time there was a cat number {i}. The cat liked milk and naps.\n" for i in range(40))


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "stories.txt").write_text(STORIES)
    (served / "shakespeare.txt").write_text("First Citizen:\nBefore we proceed any further.\n\nAll:\nSpeak.\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *args: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()


def quiet(*args):
    pass


def test_fetch_records_hash_on_first_use_and_prepares(server, tmp_path):
    url, _ = server
    cache = tmp_path / "cache"
    raw = fetch_module.fetch("tinystories", url=f"{url}/stories.txt", root=cache, progress=False, log=quiet)
    assert raw.read_text() == STORIES
    assert fetch_module.expected_hash("tinystories", cache) == fetch_module.sha256_of(raw)
    folder = fetch_module.prepare("tinystories", vocab_size=300, root=cache, log=quiet)
    tokenizer = BPETokenizer.load(folder / "tokenizer.model")
    train = load_tokens(folder / "train.npy", tokenizer.vocab_size)
    val = load_tokens(folder / "val.npy", tokenizer.vocab_size)
    assert np.count_nonzero(np.asarray(train) == tokenizer.bos_id) == 38  # 40 stories, 2 held out
    assert np.count_nonzero(np.asarray(val) == tokenizer.bos_id) == 2
    assert "cat number 39" in tokenizer.decode(np.asarray(val).tolist())


def test_second_use_verifies_the_recorded_hash(server, tmp_path):
    url, _ = server
    cache = tmp_path / "cache"
    raw = fetch_module.fetch("tinystories", url=f"{url}/stories.txt", root=cache, progress=False, log=quiet)
    fetch_module.fetch("tinystories", root=cache, log=quiet)  # cached and intact: fine
    raw.write_text(STORIES + "tampered")
    with pytest.raises(ValueError, match="the cached file changed"):
        fetch_module.fetch("tinystories", root=cache, log=quiet)


def test_published_hash_mismatch_keeps_nothing(server, tmp_path):
    url, _ = server
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="expected 86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"):
        fetch_module.fetch("tinyshakespeare", url=f"{url}/shakespeare.txt", root=cache, progress=False, log=quiet)
    assert list((cache / "tinyshakespeare").iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="could not download"):
        fetch_module.fetch("tinystories", url="http://127.0.0.1:9/none.txt", root=tmp_path, progress=False, log=quiet)
    assert list((tmp_path / "tinystories").iterdir()) == []


def test_missing_file_and_unknown_name(server, tmp_path):
    url, _ = server
    with pytest.raises(OSError, match="could not download"):
        fetch_module.fetch("tinystories", url=f"{url}/missing.txt", root=tmp_path, progress=False, log=quiet)
    with pytest.raises(ValueError, match="unknown data set"):
        fetch_module.fetch("wikipedia", root=tmp_path, log=quiet)
    with pytest.raises(FileNotFoundError, match="data fetch tinyshakespeare"):
        fetch_module.prepare("tinyshakespeare", root=tmp_path, log=quiet)
