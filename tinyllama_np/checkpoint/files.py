"""Reading and writing checkpoint files without trusting them and without half-writing them.

Three habits every format in this package follows:

* Memory-map, do not read. `np.memmap` makes the file look like a uint8 array, but the
  operating system only reads the pages that are touched, and can drop them again. A 2 GB
  checkpoint is then never held twice (once as file bytes, once as model weights).
* Check every size against the file's real size BEFORE allocating anything. A corrupt
  header that claims a 10**12-element tensor must give an error, not an attempt to allocate
  it (or a hang).
* Write to a temporary file in the same folder and rename it over the target only when
  complete (`atomic_write`, from tinyllama_np/atomic.py), so a crash or a full disk never
  leaves half a checkpoint under the real name.
"""

import os

import numpy as np



def file_error(path, message):
    """A ValueError whose message starts with the file it is about."""
    return ValueError(f"{os.fspath(path)}: {message}")


def map_file(path):
    """The bytes of the file at `path` as a read-only, memory-mapped uint8 array."""
    if os.path.getsize(path) == 0:  # mmap cannot map an empty file
        raise file_error(path, "the file is empty")
    return np.memmap(path, dtype=np.uint8, mode="r")


def read_bytes(data, start, count, path, what):
    """data[start:start+count] as bytes, or a clear error if the file ends before that."""
    if start < 0 or count < 0 or start + count > len(data):
        raise file_error(path, f"{what} (bytes {start}..{start + count}) lies outside the "
                               f"file, which has {len(data)} bytes: truncated or corrupt")
    return data[start:start + count].tobytes()
