"""The bundled corpus: found in a checkout's data/, remade bit for bit where there is none."""

import hashlib

from tinyllama_np.training import corpus


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_recorded_hashes_are_those_of_the_committed_files():
    data = corpus.SOURCE_CHECKOUT / "data"
    assert corpus.bundled_folder() == data
    for name, digest in corpus.BUNDLED_HASHES.items():
        assert sha256(data / name) == digest, name


def test_without_data_folder_the_corpus_is_remade_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "SOURCE_CHECKOUT", tmp_path / "site-packages")
    monkeypatch.setenv("TINYLLAMA_NP_CACHE", str(tmp_path / "cache"))
    said = []
    folder = corpus.bundled_folder(log=said.append)
    assert folder == tmp_path / "cache" / "stories"
    assert "no data/ folder" in said[0]
    for name, digest in corpus.BUNDLED_HASHES.items():
        assert sha256(folder / name) == digest, name
    # The second time the cached files are used as they are, without a word.
    assert corpus.bundled_folder(log=said.append) == folder and len(said) == 1


def test_a_damaged_cached_corpus_is_remade(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "SOURCE_CHECKOUT", tmp_path / "site-packages")
    monkeypatch.setenv("TINYLLAMA_NP_CACHE", str(tmp_path / "cache"))
    folder = corpus.bundled_folder(log=lambda message: None)
    (folder / "stories.txt").write_text("tampered", encoding="utf-8")
    corpus.bundled_folder(log=lambda message: None)
    assert sha256(folder / "stories.txt") == corpus.BUNDLED_HASHES["stories.txt"]
