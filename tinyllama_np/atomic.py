"""Writing files so that a crash never leaves half of one.

Everything the project writes (checkpoints, token files, tokenizers, logs) goes first to a
temporary file in the same folder, which is renamed over the real name only when complete.
`os.replace` is atomic: a reader, or the next run after a crash or a full disk, sees either
the old file or the new one, never a partial one.
"""

import os
import tempfile
from contextlib import contextmanager


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path):
    """Open a temporary binary file next to `path`; on success rename it to `path`.

        with atomic_write("model.npz") as file:
            file.write(...)

    If anything fails inside the block, the temporary file is removed and `path` is left
    as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                         suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_text_atomically(path, text):
    with atomic_write(path) as file:
        file.write(text.encode("utf-8"))
