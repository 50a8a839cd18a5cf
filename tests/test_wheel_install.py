"""Installed from a wheel, as `pip install .` or `pip install git+URL` do, the main job runs.

A wheel holds only the package, not the checkout's data/ folder: the bundled stories and their
tokenizer are then made again from the story grammar (training/corpus.py). This test copies the
source tree, builds a wheel from it, installs the wheel into a new virtual environment (numpy,
regex and tqdm come from the package index, as for a user) and trains for two steps from a
folder outside the checkout. About half a minute, most of it pip.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache")


def run(command, **options):
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                            timeout=600, **options)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def can_build_here():
    """Can this environment's setuptools build a wheel (itself from 70.1 on, or with `wheel`)?"""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from importlib.metadata import version
    major, minor = (int(part) for part in version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with tinyllama_np installed from a wheel: its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", work / "dist", source]
    if can_build_here():
        build.insert(4, "--no-build-isolation")  # with the setuptools we have, no download
    run(build)
    wheels = list((work / "dist").glob("tinyllama_np-*.whl"))
    assert len(wheels) == 1, wheels
    run([sys.executable, "-m", "venv", work / "venv"])
    bin_dir = work / "venv" / ("Scripts" if os.name == "nt" else "bin")
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", wheels[0]])
    return bin_dir


def test_the_wheel_holds_the_package_and_not_the_checkout(installed):
    located = run([installed / "python", "-c", "import tinyllama_np; print(tinyllama_np.__file__)"],
                  cwd=installed)
    assert Path(located.stdout.strip()).is_relative_to(installed.parent)


def test_train_runs_from_a_wheel_install(installed, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TINYLLAMA_NP_CACHE"] = str(tmp_path / "cache")
    result = run([installed / "tinyllama-np", "train", "--out", tmp_path / "run", "--steps", "2",
                  "--batch-size", "2", "--seq-len", "32", "--dim", "32", "--n-layers", "1",
                  "--n-heads", "2", "--eval-interval", "1", "--samples", "2", "--show", "1"],
                 cwd=tmp_path, env=env)
    assert "no data/ folder" in result.stdout
    assert "grammar accepts" in result.stdout
    assert (tmp_path / "run" / "model.npz").is_file()
    assert (tmp_path / "cache" / "stories" / "stories.txt").is_file()
