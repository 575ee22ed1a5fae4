"""What train.py records about a run (issue 13, item 9): validation losses in every logger, the model and
dataset configs in the run folder and in the logger's hyperparameters, a wandb run inside the run folder."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import REPO, load_json


def train_main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


@pytest.mark.parametrize("logger", ["csv", "tensorboard"])
def test_validation_losses_and_configs_reach_the_logger(logger, demo_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(demo_corpus))
    val_config = {"dataset_type": "audio_folder", "roots": str(demo_corpus), "split": "valid"}
    (tmp_path / "valid.json").write_text(json.dumps(val_config))
    model_config = REPO / "model_configs/generate/tiny.json"
    dataset_config = REPO / "dataset_configs/demo_audio.json"
    assert train_main(["--model-config", str(model_config), "--dataset-config", str(dataset_config),
                       "--val-dataset-config", str(tmp_path / "valid.json"), "--val-every", "1",
                       "--save-dir", str(tmp_path), "--name", "run", "--batch-size", "2", "--num-workers", "0",
                       "--accelerator", "cpu", "--max-steps", "2", "--logger", logger, "--no-export"]) == 0
    run = tmp_path / "run"
    expected = {"model_config": load_json(model_config), "dataset_config": load_json(dataset_config),
                "val_dataset_config": val_config}
    for name, config in expected.items():
        assert load_json(run / f"{name}.json") == config
    (log_dir,) = (run / "logs").iterdir()
    hparams = yaml.safe_load((log_dir / "hparams.yaml").read_text())
    assert {k: hparams[k] for k in expected} == expected and hparams["args"]["max_steps"] == 2

    keys = ["val/avg_loss", *(f"val/loss_{t:.1f}" for t in (0.1, 0.3, 0.5, 0.7, 0.9))]
    if logger == "csv":
        rows = list(csv.DictReader((log_dir / "metrics.csv").open()))
        val_rows = [row for row in rows if row.get("val/avg_loss")]
        assert [int(row["step"]) for row in val_rows] == [0, 1]  # after steps 1 and 2 (Lightning counts from 0)
        values = {key: [float(row[key]) for row in val_rows] for key in keys}
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(log_dir)).Reload()
        values = {key: [event.value for event in events.Scalars(key)] for key in keys}
    assert all(len(v) == 2 and all(math.isfinite(x) and x > 0 for x in v) for v in values.values())
    per_timestep = [values[key][0] for key in keys[1:]]
    assert values["val/avg_loss"][0] == pytest.approx(sum(per_timestep) / len(per_timestep), rel=1e-5)


def test_run_configs_never_replace_a_different_one(tmp_path):
    from saga_hsmad.training.callbacks import save_run_configs

    first = {"model_config": {"sample_rate": 44100}}
    assert save_run_configs(tmp_path, first) == {"model_config": tmp_path / "model_config.json"}
    mtime = (tmp_path / "model_config.json").stat().st_mtime_ns
    assert save_run_configs(tmp_path, first) == {"model_config": tmp_path / "model_config.json"}  # same: kept
    assert (tmp_path / "model_config.json").stat().st_mtime_ns == mtime
    changed = {"model_config": {"sample_rate": 48000}}
    assert save_run_configs(tmp_path, changed) == {"model_config": tmp_path / "model_config.2.json"}
    assert load_json(tmp_path / "model_config.json") == first["model_config"]
    assert load_json(tmp_path / "model_config.2.json") == changed["model_config"]
    assert save_run_configs(tmp_path, changed)["model_config"].name == "model_config.2.json"


def test_wandb_run_lands_in_the_run_folder(tmp_path, monkeypatch):
    """wandb puts a run whose folder does not exist yet into the system temp folder."""
    from saga_hsmad.training.callbacks import make_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    run_dir = tmp_path / "runs" / "run"
    logger = make_logger("wandb", run_dir, "run")
    try:
        run_files = Path(logger.experiment.dir).resolve()
    finally:
        logger.experiment.finish()
    assert run_files.is_relative_to(run_dir.resolve() / "wandb")
