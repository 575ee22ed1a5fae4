"""Issue 12, item 12 (config side): absurd sizes are refused up front with their key path or flag, before
anything is built, instead of an out-of-memory traceback later: model ``sample_size``, dataset ``repeat``,
train.py ``--batch-size``, and the memory of the batches the loader holds against the RAM available."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import REPO, load_json

from saga_hsmad import config_check
from saga_hsmad.config_check import ConfigError, check_train_args, validate_dataset_config, validate_model_config

TINY = REPO / "model_configs/saga_sr/tiny.json"


def problems(config: dict) -> dict[str, str]:
    return {p.path: p.message for p in validate_model_config(config)}


@pytest.mark.parametrize("value, expected", [
    (1e9, "integer"),                        # JSON 1e9 is a float
    (10**9, "at most 16777216"),
    (2**24 + 64, "at most 16777216"),
    (0, "positive"),
    (-32768, "positive"),
    (32768 + 32, "multiple of the pretransform's downsampling ratio 64"),
])
def test_absurd_sample_size_is_refused_with_its_key(value, expected):
    config = load_json(TINY)
    assert problems(config) == {}
    config["sample_size"] = value
    found = problems(config)
    assert list(found) == ["sample_size"] and expected in found["sample_size"], found


def test_sample_rate_and_channels_must_be_sane():
    config = load_json(TINY)
    config["sample_rate"], config["audio_channels"] = 0, 10**6
    found = problems(config)
    assert "sample_rate" in found and "audio_channels" in found


def test_absurd_repeat_is_refused():
    config = load_json(REPO / "dataset_configs/saga_sr/demo.json")
    for bad in (10**9, 10_001):
        found = {p.path: p.message for p in validate_dataset_config({**config, "repeat": bad})}
        assert list(found) == ["dataset.repeat"] and "at most 10000" in found["dataset.repeat"]
    assert validate_dataset_config({**config, "repeat": 10_000}) == []


def test_batch_size_and_loader_flags_are_checked():
    config = load_json(TINY)
    check_train_args(config, batch_size=4, accum_batches=1, num_workers=2)
    for kwargs, flag in ((dict(batch_size=10**6), "--batch-size"), (dict(batch_size=0), "--batch-size"),
                         (dict(batch_size=4, accum_batches=0), "--accum-batches"),
                         (dict(batch_size=4, num_workers=-1), "--num-workers")):
        with pytest.raises(ConfigError, match=flag):
            check_train_args(config, **kwargs)


def test_batches_larger_than_the_ram_are_refused_with_the_numbers(monkeypatch):
    config = load_json(TINY)  # 2 channels x 32,768 samples: 256 KiB of float32 audio per item
    monkeypatch.setattr(config_check, "available_memory", lambda: 100 * 2**20)
    check_train_args(config, batch_size=64, num_workers=2)  # 16 MiB per batch, 5 batches held: 80 MiB
    with pytest.raises(ConfigError) as info:
        check_train_args(config, batch_size=128, num_workers=2)  # 160 MiB > 100 MiB
    message = str(info.value)
    assert message.startswith("--batch-size 128:")
    for number in ("128 × 2 channels × 32768 samples × 4 bytes = 32 MiB", "5 batches", "160 MiB", "100 MiB"):
        assert number in message, message
    monkeypatch.setattr(config_check, "available_memory", lambda: None)  # unknown: not checked
    check_train_args(config, batch_size=4096, num_workers=2)


def test_train_py_refuses_a_huge_batch_before_building_anything(tmp_path):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--model-config", str(TINY),
                           "--dataset-config", str(REPO / "dataset_configs/saga_sr/demo.json"),
                           "--save-dir", str(tmp_path), "--batch-size", "1000000", "--accelerator", "cpu",
                           "--max-steps", "1"], cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "--batch-size 1000000: " in proc.stderr and "at most 4096" in proc.stderr
    assert not (tmp_path / "run").exists()
    assert time.monotonic() - start < 120
