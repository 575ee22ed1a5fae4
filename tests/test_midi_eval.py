"""HS-MAD evaluation (spec §8): onset-only note F1 / TAE / bias / velocity r against hand-made note lists,
basic-pitch's shipped ONNX model on rendered notes, the Fréchet distance and the CREPE-embedding FAD, and the
command line on folders and on a dataset config with generation from a checkpoint."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from test_hsmad_training import render_notes, write_corpus, write_midi

from saga_hsmad.evaluation.fad import CrepeEmbedding, fad, frechet_distance
from saga_hsmad.evaluation.midi_eval import main, score_notes
from saga_hsmad.evaluation.transcribe import TranscriberUnavailable, make_transcriber
from saga_hsmad.symbolic.midi import Notes

SR = 44100
REF = Notes.build([60, 64, 67, 72], [0.5, 1.0, 1.5, 2.0], [0.9, 1.4, 1.9, 2.4], [30, 60, 90, 120])


@pytest.fixture(scope="module")
def basic_pitch():
    return make_transcriber("basic_pitch")


def melody(seed: int, seconds: float) -> list[tuple[int, float, float, int]]:
    """Transcriber-friendly notes: 0.35 s apart, 0.3 s long, no pitch repeated back to back, some thirds."""
    rng = np.random.default_rng(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]
    notes, last = [], None
    for i in range(int((seconds - 0.3) / 0.35)):
        pitch = int(rng.choice([p for p in scale if p != last]))
        start = round(0.1 + 0.35 * i, 4)
        notes.append((pitch, start, start + 0.3, int(rng.integers(40, 120))))
        if rng.random() < 0.3:
            notes.append((pitch - 4, start, start + 0.3, int(rng.integers(40, 120))))
        last = pitch
    return notes


def shifted(notes: Notes, seconds, velocity=None, end=None) -> Notes:
    return Notes.build(notes.pitch, notes.start + np.asarray(seconds), notes.end + np.asarray(seconds)
                       if end is None else end, notes.velocity if velocity is None else velocity)


# -- metrics ----------------------------------------------------------------------------------------------------
def test_perfect_and_shifted_transcriptions():
    perfect = score_notes(REF, REF)
    assert (perfect.precision, perfect.recall, perfect.f1, perfect.n_matched) == (1.0, 1.0, 1.0, 4)
    assert perfect.tae == 0.0 and perfect.bias == 0.0 and perfect.velocity_r == pytest.approx(1.0)

    late = score_notes(REF, shifted(REF, 0.030))                      # inside the 50 ms tolerance
    assert late.f1 == 1.0 and late.tae == pytest.approx(0.030, abs=1e-9) and late.bias == pytest.approx(0.030)
    early = score_notes(REF, shifted(REF, -0.030))
    assert early.f1 == 1.0 and early.tae == pytest.approx(0.030, abs=1e-9) and early.bias == pytest.approx(-0.030)

    missed = score_notes(REF, shifted(REF, 0.080))                    # outside: nothing matches
    assert missed.f1 == 0.0 and missed.n_matched == 0 and math.isnan(missed.tae) and math.isnan(missed.bias)


def test_tae_bias_precision_and_velocity_by_hand():
    mixed = score_notes(REF, shifted(REF, [0.020, -0.040, 0.0, 0.0]))
    assert mixed.tae == pytest.approx(math.sqrt((0.020 ** 2 + 0.040 ** 2) / 4))
    assert mixed.bias == pytest.approx((0.020 - 0.040) / 4)
    extra = Notes.build(np.r_[REF.pitch, 50], np.r_[REF.start, 3.0], np.r_[REF.end, 3.2], np.r_[REF.velocity, 64])
    s = score_notes(REF, extra)
    assert (s.precision, s.recall) == (0.8, 1.0) and s.f1 == pytest.approx(2 * 0.8 / 1.8)
    wrong_pitch = Notes.build(REF.pitch + 1, REF.start, REF.end, REF.velocity)
    assert score_notes(REF, wrong_pitch).f1 == 0.0
    # offsets are ignored (onset-only F1), velocities are correlated over matched notes
    long_ends = shifted(REF, 0.0, velocity=2 * REF.velocity / 3 + 5, end=REF.end + 3.0)
    s = score_notes(REF, long_ends)
    assert s.f1 == 1.0 and s.velocity_r == pytest.approx(1.0)
    assert score_notes(REF, shifted(REF, 0.0, velocity=127 - REF.velocity)).velocity_r == pytest.approx(-1.0)
    assert score_notes(REF, Notes.empty()).f1 == 0.0


# -- transcribers -------------------------------------------------------------------------------------------------
def test_basic_pitch_runs_its_shipped_onnx_model_and_finds_a_scale(basic_pitch):
    assert basic_pitch.model_path.name == "nmp.onnx" and basic_pitch.model.model_type.name == "ONNX"
    scale = [(p, 0.25 + 0.5 * i, 0.25 + 0.5 * i + 0.4, 100) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]
    reference = Notes.build(*(np.array(c) for c in zip(*scale)))
    estimate = basic_pitch.transcribe(render_notes(scale, 4.5).T, SR)
    s = score_notes(reference, estimate)
    assert s.f1 == 1.0 and s.tae < 0.025 and abs(s.bias) < 0.025


def test_transkun_without_the_package_is_a_clear_error():
    import importlib.util

    if importlib.util.find_spec("transkun") is not None:
        pytest.skip("transkun is installed here")
    with pytest.raises(TranscriberUnavailable, match="transkun is not installed.*pip install transkun"):
        make_transcriber("transkun")
    with pytest.raises(ValueError, match="unknown transcriber 'mt3'"):
        make_transcriber("mt3")


# -- FAD ------------------------------------------------------------------------------------------------------------
def test_frechet_distance_of_known_gaussians():
    # 1-D: |0 - 1|^2 + 1 + 4 - 2 sqrt(1 * 4) = 2
    assert frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)) == pytest.approx(2.0)
    # 2-D diagonal: |mu|^2 + sum_i (s1_i + s2_i - 2 sqrt(s1_i s2_i)) = 5 + (1 + 9 - 6) + (4 + 1 - 4) = 10
    value = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([9.0, 1.0]))
    assert value == pytest.approx(10.0)


def test_crepe_fad_of_a_set_with_itself_is_zero_and_with_another_set_positive():
    embedding = CrepeEmbedding("tiny", hop_seconds=0.05)
    assert "FAD-CREPE" in embedding.label and "not VGGish" in embedding.label
    tones = [(render_notes([(p, 0.0, 0.9, 100)], 1.0).T, SR) for p in (57, 64, 71)]
    rng = np.random.default_rng(0)
    noise = [(0.1 * rng.standard_normal((2, SR)).astype(np.float32), SR) for _ in range(3)]
    same = fad(tones, tones, embedding)
    other = fad(tones, noise, embedding)
    assert same < 1e-6 * max(other, 1.0) and other > 0.1


# -- command line -----------------------------------------------------------------------------------------------
def test_cli_on_folders_scores_generated_against_the_ceiling(tmp_path):
    midi, gen, ref = tmp_path / "midi", tmp_path / "gen", tmp_path / "ref"
    for d in (midi, gen, ref):
        d.mkdir()
    for i in range(2):
        notes = melody(10 + i, 3.0)
        write_midi(midi / f"p{i}.mid", notes)
        sf.write(ref / f"p{i}.wav", render_notes(notes, 3.5), SR)
    late = [(p, s + 0.020, e + 0.020, v) for p, s, e, v in melody(10, 3.0)]                 # 20 ms late
    sf.write(gen / "p0.wav", render_notes(late, 3.5), SR)
    half = melody(11, 3.0)[::2]                                                            # half the notes
    sf.write(gen / "p1.wav", render_notes(half, 3.5), SR)
    out = tmp_path / "eval"
    assert main(["--generated", str(gen), "--midi", str(midi), "--reference", str(ref), "--out", str(out),
                 "--crepe-capacity", "tiny"]) == 0
    rows = {(r["piece"], r["system"]): r for r in csv.DictReader((out / "per_piece.csv").open())}
    assert set(rows) == {(p, s) for p in ("p0", "p1") for s in ("generated", "sine_baseline", "ground_truth")}
    for p in ("p0", "p1"):
        assert float(rows[(p, "ground_truth")]["f1"]) >= 0.9
    # the 20 ms delay shows as bias relative to the ceiling row (same transcriber, same notes)
    delay = float(rows[("p0", "generated")]["bias_ms"]) - float(rows[("p0", "ground_truth")]["bias_ms"])
    assert delay == pytest.approx(20.0, abs=6.0)
    assert float(rows[("p1", "generated")]["recall"]) < 0.7 < float(rows[("p1", "ground_truth")]["recall"])
    # transcriber-free columns: the exact rendering follows its MIDI; half the notes follow it less
    for p in ("p0", "p1"):
        assert float(rows[(p, "ground_truth")]["chroma_r"]) > 0.5 and float(rows[(p, "ground_truth")]["onset_r"]) > 0.3
    assert float(rows[("p1", "generated")]["onset_r"]) < float(rows[("p1", "ground_truth")]["onset_r"])
    # the non-learned row: sines at the MIDI's pitches follow the MIDI, and basic-pitch finds most of their notes
    for p in ("p0", "p1"):
        assert float(rows[(p, "sine_baseline")]["chroma_r"]) > 0.5 and float(rows[(p, "sine_baseline")]["f1"]) > 0.5
    summary = {r["system"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert float(summary["generated"]["fad"]) > 0 and "FAD-CREPE" in summary["generated"]["fad_embedding"]
    report = (out / "report.md").read_text()
    assert "basic_pitch" in report and "not VGGish" in report and "ceiling" in report and "sine_baseline" in report
    for p in ("p0", "p1"):
        assert (out / "plots" / f"{p}.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_generates_from_a_checkpoint_over_a_dataset_config(tmp_path):
    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    config = json.loads((REPO / "model_configs/hsmad/tiny.json").read_text())
    torch.manual_seed(0)
    save_inference_checkpoint(tmp_path / "tiny.ckpt", saga_hsmad.create_model_from_config(config).state_dict(),
                              config, ema=False)
    root = write_corpus(tmp_path / "corpus", n=2, seconds=1.5)
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"dataset_type": "midi_audio_folder", "roots": str(root)}))
    out = tmp_path / "eval"
    assert main(["--dataset-config", str(dataset), "--ckpt", str(tmp_path / "tiny.ckpt"), "--max-items", "1",
                 "--max-seconds", "1.0", "--steps", "2", "--fad-embedding", "none", "--no-plots", "--device", "cpu",
                 "--out", str(out)]) == 0
    generated, sr = sf.read(out / "generated" / "piece0.wav", always_2d=True)
    assert sr == config["sample_rate"] and generated.shape[1] == config["audio_channels"]
    assert generated.shape[0] >= sr  # the first second (+ release)
    systems = [r["system"] for r in csv.DictReader((out / "per_piece.csv").open())]
    assert systems == ["generated", "sine_baseline", "ground_truth"]
    assert "FAD: not computed" in (out / "report.md").read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "o")]) == 2
    assert "give --midi" in capsys.readouterr().err
    assert main(["--midi", str(tmp_path), "--out", str(tmp_path / "o"), "--transcriber", "transkun"]) == 2
