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


# Cross-checks against reference libraries (torch, transformers, tokenizers, tiktoken,
# safetensors, gguf, peft) carry the `reference` mark and skip where the library is absent.
# CI installs them all, so the end of every run says how many of these checks really ran.
reference_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_configure(config):
    config.addinivalue_line("markers", "reference: compares with a reference library; "
                            "skipped where that library is not installed")


def pytest_runtest_logreport(report):
    if "reference" in report.keywords and (report.when == "call" or report.outcome != "passed"):
        reference_outcomes[report.outcome] += 1


def pytest_collectreport(report):
    if report.skipped:  # a whole module skipped: importorskip found its library missing
        reference_outcomes["skipped"] += 1


def pytest_terminal_summary(terminalreporter):
    counts = reference_outcomes
    terminalreporter.write_line(
        f"reference cross-checks that ran: {counts['passed'] + counts['failed']} "
        f"({counts['failed']} of them failed); skipped for a missing library: "
        f"{counts['skipped']} (a whole module counts once)")
