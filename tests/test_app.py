"""The web page's handlers (``saga_hsmad.app.handlers``), called directly on tiny checkpoints made here: each tab
writes what ``sample.py`` writes for the same file and settings, bad input gives the command line's message,
and model runs on one device never overlap."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from test_sr_inference import noise, sample_main, write

from saga_hsmad.app import handlers
from saga_hsmad.app.handlers import AppError, Workspace


def make_ckpt(folder, kind: str):
    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    config = json.loads((REPO / "model_configs" / kind / "tiny.json").read_text())
    torch.manual_seed(0)
    path = folder / f"tiny_{kind}.ckpt"
    save_inference_checkpoint(path, saga_hsmad.create_model_from_config(config).state_dict(), config, ema=False)
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app_ckpts")
    return {kind: make_ckpt(folder, kind) for kind in ("saga_sr", "hsmad", "generate")}


@pytest.fixture(scope="module")
def models(ckpts):
    loaded = handlers.load_models([str(ckpts[k]) for k in ("saga_sr", "hsmad", "generate")], "cpu")
    return {m.kind: m for m in loaded}


@pytest.fixture
def workspace(tmp_path):
    ws = Workspace(tmp_path / "ws")
    yield ws
    ws.close()


def write_piece(path, seconds: float = 2.0):
    from test_hsmad_training import piece_notes, write_midi

    write_midi(path, piece_notes(0, seconds))
    return path


def test_each_checkpoint_gets_the_mode_sample_py_picks(models):
    assert {k: m.kind for k, m in models.items()} == {"super_resolution": "super_resolution", "midi": "midi",
                                                      "generate": "generate"}


def test_super_resolution_writes_what_sample_py_writes(models, ckpts, workspace, tmp_path):
    clip = write(tmp_path / "in" / "clip.wav", noise(0.5, 16_000, 1), 16_000)
    calls = []
    result = handlers.super_resolve(models["super_resolution"], str(clip), workspace, caption="noise",
                                    target_rolloff=0.6, steps=2, seed=3,
                                    progress=lambda done, total, unit: calls.append((done, total, unit)))
    assert sample_main(["--ckpt", str(ckpts["saga_sr"]), "--input", str(clip), "--output", str(tmp_path / "cli"),
                        "--steps", "2", "--seed", "3", "--caption", "noise", "--target-rolloff", "0.6",
                        "--device", "cpu"]) == 0
    page, page_sr = sf.read(result.output_wav, always_2d=True)
    cli, cli_sr = sf.read(tmp_path / "cli" / "clip.wav", always_2d=True)
    assert page_sr == cli_sr == 44_100 and page.shape == cli.shape == (int(round(0.5 * 44_100)), 1)
    np.testing.assert_array_equal(page, cli)
    heard, heard_sr = sf.read(result.input_wav, always_2d=True)
    assert heard_sr == 44_100 and heard.shape == page.shape
    assert calls and calls[-1] == (calls[-1][1], calls[-1][1], "windows")  # ends at total
    # a 16 kHz input has nothing above 8 kHz: its detected cutoff lies below that
    assert 1_000 < result.input_cutoff_hz < 8_000
    assert result.spectrogram_png.stat().st_size > 10_000
    assert "clip.wav" in result.summary and "input roll-off" in result.summary


def test_super_resolution_bad_input_gives_the_command_line_message(models, workspace, tmp_path):
    entry = models["super_resolution"]
    bad = tmp_path / "upload_dir" / "broken.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    with pytest.raises(AppError) as e:
        handlers.super_resolve(entry, str(bad), workspace, caption="x", steps=2)
    assert str(e.value).startswith("ERROR broken.wav: ") and "upload_dir" not in str(e.value)
    low_rate = write(tmp_path / "low.wav", noise(0.2, 2_000, 1), 2_000)
    with pytest.raises(AppError, match=r"ERROR low.wav: sample rate 2000 Hz is outside the supported"):
        handlers.super_resolve(entry, str(low_rate), workspace, caption="x", steps=2)
    with pytest.raises(AppError, match=r"^argument --steps: must be >= 1, got 0$"):
        handlers.super_resolve(entry, str(low_rate), workspace, caption="x", steps=0)
    with pytest.raises(AppError, match=r"^argument --cfg-text: must be a finite number, got nan$"):
        handlers.super_resolve(entry, str(low_rate), workspace, caption="x", cfg_text=float("nan"))
    with pytest.raises(AppError, match="no audio file"):
        handlers.super_resolve(entry, None, workspace, caption="x")


def test_evaluate_measures_input_output_and_noise_fill(models, workspace, tmp_path):
    from saga_hsmad.evaluation.baselines import average_power_spectrum

    rng = np.random.default_rng(0)
    reference = write(tmp_path / "ref.wav", (0.1 * rng.standard_normal((2, 44_100))).astype(np.float32), 44_100)
    corpus = write(tmp_path / "corpus.wav", (0.1 * rng.standard_normal((2, 44_100))).astype(np.float32), 44_100)
    result = handlers.evaluate(models["super_resolution"], str(reference), 4000.0, workspace,
                               average_power=average_power_spectrum([corpus]), caption="noise", steps=2)
    rows = {m["system"]: m for m in result.metrics}
    assert list(rows) == ["unprocessed LR input", "noise fill (no learning)", "SAGA-SR"]
    assert all(np.isfinite(m["LSD"]) and np.isfinite(m["LSD-HF"]) for m in rows.values())
    # white noise cut at 4 kHz: the LR input misses everything above; noise of the corpus' spectrum fills it
    assert rows["noise fill (no learning)"]["LSD-HF"] < 0.5 * rows["unprocessed LR input"]["LSD-HF"]
    assert 3_000 < result.input_cutoff_hz < 4_500
    lowres, sr = sf.read(result.input_wav, always_2d=True)
    assert sr == 44_100 and lowres.shape == (44_100, 2)
    with pytest.raises(AppError, match="cutoff 100 Hz: give a number of Hz between 2000 and 20000"):
        handlers.evaluate(models["super_resolution"], str(reference), 100.0, workspace, caption="noise", steps=2)


def test_midi_renders_what_sample_py_renders_and_a_time_range(models, ckpts, workspace, tmp_path):
    entry = models["midi"]
    piece = write_piece(tmp_path / "piece.mid", 3.0)
    png, line = handlers.preview_midi(entry, str(piece), workspace)
    assert png.stat().st_size > 5_000 and line.startswith("piece.mid: ") and " notes, " in line
    calls = []
    result = handlers.render_midi(entry, str(piece), workspace, style="piano", steps=2, seed=1,
                                  progress=lambda done, total, unit: calls.append((done, total)))
    assert sample_main(["--ckpt", str(ckpts["hsmad"]), "--midi", str(piece), "--output", str(tmp_path / "cli"),
                        "--steps", "2", "--seed", "1", "--style", "piano", "--device", "cpu"]) == 0
    page, sr = sf.read(result.output_wav, always_2d=True)
    cli, _ = sf.read(tmp_path / "cli" / "piece.wav", always_2d=True)
    assert sr == entry.sample_rate and page.shape == cli.shape
    np.testing.assert_array_equal(page, cli)
    assert calls[-1][0] == calls[-1][1] == len(calls)
    assert result.plot_png.stat().st_size > 5_000
    part = handlers.render_midi(entry, str(piece), workspace, style="piano", steps=1, start=1.0, end=2.0)
    frames = sf.info(str(part.output_wav)).frames
    assert sr * 1.0 <= frames < page.shape[0]  # the second second (+ release), not the piece


def test_midi_bad_input_gives_the_command_line_message(models, workspace, tmp_path):
    entry = models["midi"]
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    with pytest.raises(AppError, match=r"^ERROR bad.mid: "):
        handlers.preview_midi(entry, str(bad), workspace)
    piece = write_piece(tmp_path / "piece.mid")
    with pytest.raises(AppError, match="the start must be >= 0 and before the end"):
        handlers.render_midi(entry, str(piece), workspace, style="piano", steps=1, start=1.5, end=1.0)
    with pytest.raises(AppError, match=r"^argument --w-style: must be <= 100, got 1000$"):
        handlers.render_midi(entry, str(piece), workspace, style="piano", w_style=1000.0)


def test_generate_writes_what_sample_py_writes(models, ckpts, workspace, tmp_path):
    result = handlers.generate(models["generate"], workspace, prompt="strings", seconds=0.5, steps=2, seed=4)
    assert sample_main(["--ckpt", str(ckpts["generate"]), "--output", str(tmp_path / "cli"), "--prompt", "strings",
                        "--seconds", "0.5", "--cond", "seconds_total=0.5", "--steps", "2", "--seed", "4",
                        "--device", "cpu"]) == 0
    page, sr = sf.read(result.output_wav, always_2d=True)
    cli, _ = sf.read(tmp_path / "cli" / "sample_0.wav", always_2d=True)
    assert sr == 44_100 and page.shape == cli.shape and page.shape[1] == 2
    np.testing.assert_array_equal(page, cli)
    with pytest.raises(AppError, match=r"^argument --seconds: must be > 0, got 0$"):
        handlers.generate(models["generate"], workspace, seconds=0)


def test_model_runs_on_one_device_never_overlap(models, workspace, monkeypatch):
    import saga_hsmad.inference.generate_mode as generate_mode

    spans = []

    def slow_generate(*args, **kwargs):
        t0 = time.monotonic()
        time.sleep(0.2)
        spans.append((t0, time.monotonic()))
        return np.zeros((1, 2, 4410), dtype=np.float32)

    monkeypatch.setattr(generate_mode, "generate_audio", slow_generate)
    threads = [threading.Thread(target=handlers.generate, args=(models["generate"], workspace),
                                kwargs=dict(seconds=0.1, steps=1)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    assert len(spans) == 3 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_workspace_removes_old_request_folders_and_everything_on_close(tmp_path):
    ws = Workspace(tmp_path / "ws", max_age=60.0)
    old = ws.new("sr")
    (old / "out.wav").write_bytes(b"x")
    stamp = time.time() - 120
    import os

    os.utime(old, (stamp, stamp))
    fresh = ws.new("midi")
    assert not old.exists() and fresh.is_dir()
    ws.close()
    assert not (tmp_path / "ws").exists()
