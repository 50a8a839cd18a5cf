import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def run_cli():
    """Run `python -m tinyllama_np ARGS...` from the repository root, as a user would."""
    def run(*args):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run([sys.executable, "-m", "tinyllama_np", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    return run
