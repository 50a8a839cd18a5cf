"""How many threads NumPy's matrix products use, read and changed while running.

NumPy hands every matrix product to a BLAS library; the wheels from PyPI bundle OpenBLAS,
which starts one thread per core (or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS of them) when
NumPy is imported. Data-parallel training (training/data_parallel.py) runs one worker
thread per core instead, and then each worker's products must stay on its own core: two
workers asking a 2-thread OpenBLAS for 2 threads each would fight over two cores.

OpenBLAS has a C function for this, `openblas_set_num_threads`; this file finds it in the
library NumPy loaded (through ctypes, as threadpoolctl does) and calls it. Where NumPy uses
another BLAS (Apple's Accelerate, Intel's MKL), `find_openblas()` returns None, `blas_threads`
changes nothing, and the commands default to one worker.
"""

import ctypes
import glob
import os
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

# The same function under the names OpenBLAS builds have used (NumPy 2 bundles
# "scipy_openblas" with 64-bit integers; older wheels and system packages use the others).
SET_NAMES = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
             "openblas_set_num_threads")
GET_NAMES = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
             "openblas_get_num_threads")


class OpenBLAS:
    def __init__(self, library, set_name, get_name):
        self.set_function = getattr(library, set_name)
        self.get_function = getattr(library, get_name)

    def get_threads(self):
        return int(self.get_function())

    def set_threads(self, count):
        self.set_function(int(count))


def loaded_library_paths():
    """Shared libraries this process has loaded whose name mentions openblas."""
    paths = []
    try:  # Linux lists them in /proc/self/maps
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = [line.split(None, 5)[-1].strip() for line in maps if "openblas" in line.lower()]
    except OSError:  # macOS, Windows: the folders where NumPy's wheels keep their libraries
        numpy_folder = os.path.dirname(np.__file__)
        for folder in (os.path.join(numpy_folder, ".dylibs"), numpy_folder + ".libs"):
            paths += glob.glob(os.path.join(folder, "*openblas*"))
    return list(dict.fromkeys(path for path in paths if os.path.isfile(path)))


@lru_cache(maxsize=None)
def find_openblas():
    """The OpenBLAS NumPy uses, or None if there is none (or it cannot be reached).
    Looked up once per process (it reads the list of loaded libraries)."""
    for path in loaded_library_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        set_name = next((name for name in SET_NAMES if hasattr(library, name)), None)
        get_name = next((name for name in GET_NAMES if hasattr(library, name)), None)
        if set_name and get_name:
            return OpenBLAS(library, set_name, get_name)
    return None


@contextmanager
def blas_threads(count):
    """Matrix products use `count` threads inside the block, and the earlier count after it
    (with OpenBLAS; with another BLAS, the block runs with its threads unchanged)."""
    openblas = find_openblas()
    if openblas is None:
        yield
        return
    before = openblas.get_threads()
    openblas.set_threads(count)
    try:
        yield
    finally:
        openblas.set_threads(before)
