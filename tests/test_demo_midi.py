"""``python -m saga_hsmad.demo --task midi`` (``saga_hsmad.demo_midi``): the dispatch from the demo, the
checkpoint it samples from and the table it prints (the full run trains for minutes and is not a unit test)."""
from __future__ import annotations

import csv

import pytest

from saga_hsmad import demo, demo_midi


def test_task_midi_dispatches_to_demo_midi(monkeypatch):
    seen = {}
    monkeypatch.setattr(demo_midi, "run", lambda args: seen.setdefault("args", args) and 0)
    assert demo.main(["--task", "midi", "--out", "/tmp/x", "--max-steps", "7"]) == 0
    assert seen["args"].max_steps == 7 and str(seen["args"].out) == "/tmp/x" and seen["args"].batch_size == 8
    with pytest.raises(SystemExit):
        demo.main(["--task", "video"])


def test_exported_checkpoint_prefers_safetensors(tmp_path):
    with pytest.raises(FileNotFoundError, match="export.safetensors"):
        demo_midi.exported_checkpoint(tmp_path)
    (tmp_path / "export.ckpt").write_bytes(b"old")
    assert demo_midi.exported_checkpoint(tmp_path).name == "export.ckpt"
    (tmp_path / "export.safetensors").write_bytes(b"new")
    assert demo_midi.exported_checkpoint(tmp_path).name == "export.safetensors"


def test_summary_table_lists_model_baseline_and_ceiling_in_that_order(tmp_path):
    path = tmp_path / "summary.csv"
    fields = ["system", "pieces", "f1_mean", "chroma_r_mean", "onset_r_mean"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for system, f1 in (("ground_truth", 0.52), ("generated", 0.25), ("sine_baseline", 0.6)):
            writer.writerow({"system": system, "pieces": 5, "f1_mean": f1, "chroma_r_mean": 0.5, "onset_r_mean": 0.3})
    lines = demo_midi.summary_table(path).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["HS-MAD", "additive", "ground-truth"]
    assert "0.250" in lines[1] and "0.600" in lines[2] and "0.520" in lines[3]


def test_demo_trains_to_the_end_of_the_configs_learning_rate_schedule():
    """The demo stops where the tiny config's cosine schedule ends: stopping earlier skips the annealed end
    (in round 6, F1 kept rising while the rate fell), and steps past it train at learning rate 0."""
    import argparse
    import json

    parser = argparse.ArgumentParser()
    demo_midi.add_arguments(parser)
    steps = parser.parse_args([]).max_steps
    config = json.loads((demo_midi.REPO / demo_midi.MODEL_CONFIG).read_text())
    schedule = config["training"]["optimizer_configs"]["diffusion"]["scheduler"]["config"]
    assert schedule["total_steps"] == steps
