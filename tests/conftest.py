"""Shared fixtures. Every test runs offline on CPU; nothing is written inside the repository."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: the test models are tiny, and on a 2-core machine OpenMP spin-waiting
    between threads made their steps 10-30x slower. Subprocesses (train.py ...) are unaffected."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _installed():
    import saga_hsmad

    saga_hsmad.install()


@pytest.fixture(scope="session", autouse=True)
def _cache_outside_repo(tmp_path_factory):
    """Point the project cache (demo corpus ...) at a temporary directory for the whole session."""
    cache = tmp_path_factory.mktemp("saga_hsmad_cache")
    old = os.environ.get("SAGA_HSMAD_CACHE")
    os.environ["SAGA_HSMAD_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("SAGA_HSMAD_CACHE", None)
    else:
        os.environ["SAGA_HSMAD_CACHE"] = old


def write_noise_folder(root: Path, n: int = 4, seconds: float = 1.0, sr: int = 44100, channels: int = 2,
                       seed: int = 0) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        audio = (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)
        sf.write(root / f"clip{i}.wav", audio, sr)
        (root / f"clip{i}.json").write_text(json.dumps({"caption": f"noise clip {i}"}))
    return root


@pytest.fixture
def noise_folder(tmp_path) -> Path:
    return write_noise_folder(tmp_path / "audio")


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """A tiny demo corpus (4 pieces of 4 s) built once per session outside the repository."""
    from saga_hsmad.data.demo_corpus import ensure_demo_corpus

    return ensure_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", num_pieces=4, seconds=4.0, seed=0)


def run_script(script: str, *args: str, env: dict | None = None, timeout: int = 600):
    """Run one of the top-level scripts in a subprocess; fail with its output if it fails."""
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=str(REPO), env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


class StepHarness:
    """Mixin giving a training wrapper just enough of a Trainer for ``training_step`` (no Trainer run);
    it records what the step logs in ``logged``."""

    logged: dict

    @property
    def trainer(self):
        import torch

        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
        return type("Trainer", (), {"optimizers": [optimizer]})()

    def log(self, name, value, *args, **kwargs):
        self.__dict__.setdefault("logged", {})[name] = value

    def log_dict(self, values, *args, **kwargs):
        self.__dict__.setdefault("logged", {}).update(values)
