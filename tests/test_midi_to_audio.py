"""sample.py mode "midi" (HS-MAD spec §6): decoupled guidance in one batched forward per step, long pieces in
fused overlapping windows without seams, the training conditioning path, the output length, per-file errors,
and train.py → sample.py --midi on the demo corpus."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, run_script
from test_hsmad_training import corpus_batch, piece_notes, write_corpus, write_midi
from torch import nn

import saga_hsmad
from saga_hsmad.checkpoints import load_model, read_checkpoint, save_inference_checkpoint
from saga_hsmad.factory import create_pretransform_from_config
from saga_hsmad.inference.midi_to_audio import MODE, MidiToAudio, MidiToAudioOptions, WindowPlan, piece_seconds
from saga_hsmad.symbolic.midi import Score, read_midi

CONFIG = REPO / "model_configs" / "hsmad" / "tiny.json"


def tiny_config() -> dict:
    return json.loads(CONFIG.read_text())


# the tiny config's layout (rate, channels, R_VAE, T_H), read from it so the tests follow the config
SR, CHANNELS = int(tiny_config()["sample_rate"]), int(tiny_config()["audio_channels"])
RATIO = int(create_pretransform_from_config(tiny_config()["model"]["pretransform"], SR).downsampling_ratio)
WINDOW = int(tiny_config()["sample_size"]) // RATIO
WINDOW_SECONDS = WINDOW * RATIO / SR


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return saga_hsmad.create_model_from_config(tiny_config()).eval()


def long_score(windows: float) -> Score:
    """A piece of ``windows`` training windows (the file's end; notes ending by 0.5 s before it, so the default
    release does not lengthen it), notes at times that do not sit on latent frame boundaries."""
    seconds = windows * WINDOW_SECONDS
    notes = [(60 + (i % 7), 0.0371 + 0.2113 * i, min(0.0371 + 0.2113 * i + 0.3, seconds - 0.5), 64 + i % 40)
             for i in range(int((seconds - 0.9) / 0.2113))]
    return Score.from_notes(notes, end_time=seconds)


class BranchStub(nn.Module):
    """A backbone with known branch outputs: v = BASE + H·[structure kept] + S·[style kept] + J·[both kept]."""

    condition_names = ("structure", "style")
    BASE, H, S, J = 0.5, 2.0, -3.0, 7.0

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.calls: list[int] = []

    def forward(self, x, t, input_concat_cond=None, global_cond=None, null_conditions=None, **kwargs):
        self.calls.append(x.shape[0])
        assert input_concat_cond.shape[0] == x.shape[0] == global_cond.shape[0]
        h = (~null_conditions["structure"]).to(x.dtype)[:, None, None]
        s = (~null_conditions["style"]).to(x.dtype)[:, None, None]
        return self.BASE + self.H * h + self.S * s + self.J * h * s + 0 * x


class OracleStub(nn.Module):
    """v = (x - x0) / t with x0 a function of the window's structure (its sustain rows), so exact Euler steps
    land on x0: windows cut from one piece must reproduce the whole piece's x0 seamlessly."""

    condition_names = ("structure", "style")

    def __init__(self, channels: int):
        super().__init__()
        self.mix = nn.Parameter(torch.randn(channels, generator=torch.Generator().manual_seed(3)))

    def target(self, structure: torch.Tensor) -> torch.Tensor:
        sustain = structure[:, 128:256].sum(1)                                   # (b, n)
        return sustain[:, None, :] * self.mix[None, :, None]

    def forward(self, x, t, input_concat_cond=None, null_conditions=None, **kwargs):
        return (x - self.target(input_concat_cond)) / t[:, None, None]


# -- guidance ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w_h, w_s", [(2.0, 1.5), (0.0, 0.0), (1.0, 0.0), (0.3, 2.5)])
def test_decoupled_guidance_formula_and_one_forward_per_step(tiny_model, w_h, w_s):
    stub = BranchStub()
    tiny_model.model = stub
    steps = 3
    renderer = MidiToAudio(tiny_model, tiny_config(), MidiToAudioOptions(steps=steps, w_structure=w_h, w_style=w_s,
                                                                       batch_windows=8))
    score = long_score(2.26)
    plan = renderer.plan(score)
    assert len(plan.starts) == 3
    latents = renderer.generate_latents(renderer.window_metadata(score, plan, "a style"), plan)
    # constant velocity v over t in [1, 0]: x_0 = noise - v
    noise = torch.randn((1, tiny_model.io_channels, plan.frames), generator=torch.Generator().manual_seed(0))
    v = noise - latents
    b = stub
    uncond, struct, style = b.BASE, b.BASE + b.H, b.BASE + b.S
    expected = uncond + w_h * (struct - uncond) + w_s * (style - uncond)  # never the joint branch (J)
    torch.testing.assert_close(v, torch.full_like(v, expected), rtol=1e-5, atol=1e-4)
    if w_h == w_s == 0:
        torch.testing.assert_close(v, torch.full_like(v, b.BASE), rtol=1e-5, atol=1e-4)
    # one forward per step holding the three branches of all three windows
    assert stub.calls == [3 * 3] * steps


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_temperature_scales_the_initial_noise(tiny_model, temperature):
    stub = BranchStub()
    tiny_model.model = stub
    renderer = MidiToAudio(tiny_model, tiny_config(), MidiToAudioOptions(steps=2, w_structure=2.0, w_style=1.5,
                                                                       temperature=temperature))
    score = long_score(1.5)
    plan = renderer.plan(score)
    latents = renderer.generate_latents(renderer.window_metadata(score, plan, "a style"), plan)
    noise = torch.randn((1, tiny_model.io_channels, plan.frames), generator=torch.Generator().manual_seed(0))
    b = stub
    v = b.BASE + 2.0 * b.H + 1.5 * b.S                    # constant guided velocity: x_0 = τ·noise − v
    torch.testing.assert_close(latents, temperature * noise - v, rtol=1e-5, atol=1e-4)


def test_temperature_comes_from_the_flag_then_the_config():
    from types import SimpleNamespace

    from saga_hsmad.inference.midi_to_audio import options_from_args

    args = SimpleNamespace(steps=None, w_structure=None, w_style=None, window_overlap=None, crossfade="linear",
                           release=0.5, batch_windows=1, seed=0, temperature=None)
    config = tiny_config()
    assert options_from_args(args, {**config, "sampling": {}}).temperature == 1.0
    assert options_from_args(args, {**config, "sampling": {"temperature": 0.7}}).temperature == 0.7
    args.temperature = 0.5
    assert options_from_args(args, {**config, "sampling": {"temperature": 0.7}}).temperature == 0.5


def test_forward_count_follows_batch_windows(tiny_model):
    stub = BranchStub()
    tiny_model.model = stub
    renderer = MidiToAudio(tiny_model, tiny_config(), MidiToAudioOptions(steps=2, batch_windows=2))
    score = long_score(2.26)
    plan = renderer.plan(score)
    renderer.generate_latents(renderer.window_metadata(score, plan, "x"), plan)
    assert stub.calls == [6, 3] * 2  # windows {0, 1} then {2}, three branches each


def test_result_does_not_depend_on_batch_windows():
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(tiny_config()).eval()
    score = long_score(2.26)
    out = []
    for batch_windows in (1, 3):
        renderer = MidiToAudio(model, tiny_config(), MidiToAudioOptions(steps=2, batch_windows=batch_windows))
        plan = renderer.plan(score)
        out.append(renderer.generate_latents(renderer.window_metadata(score, plan, "x"), plan))
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-5)


# -- long pieces -----------------------------------------------------------------------------------------------
def test_fusion_weights_sum_to_one_over_every_frame():
    plan = WindowPlan(samples=0, frames=379, window=128, starts=(0, 96, 192, 251), ratio=256, sample_rate=SR)
    total = torch.zeros(379, dtype=torch.float64)
    for start, w in zip(plan.starts, plan.fusion_weights()):
        assert float(w.min()) > 0
        total[start:start + 128] += w
    torch.testing.assert_close(total[:251], torch.ones(251, dtype=torch.float64))  # two windows overlap there
    assert float(total.min()) >= 1.0 - 1e-12  # the last window overlaps more (it ends at the piece's end)


def test_windows_reproduce_the_whole_piece_without_seams():
    """With an oracle backbone the fused windows give exactly the whole piece's latent, and the decoded audio
    equals the decode of that latent: no seam, no offset, no gap, no bulge at any join."""
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(tiny_config()).eval()
    model.model = OracleStub(model.io_channels)
    renderer = MidiToAudio(model, tiny_config(), MidiToAudioOptions(steps=4, batch_windows=2))
    score = long_score(2.26)
    plan = renderer.plan(score)
    assert len(plan.starts) >= 3 and plan.frames > WINDOW
    latents = renderer.generate_latents(renderer.window_metadata(score, plan, "x"), plan)
    whole = renderer.spec.srm(score, plan.frames * RATIO / SR)[None]        # S_sync of the whole piece
    with torch.no_grad():
        x0 = model.model.target(whole)
    torch.testing.assert_close(latents, x0, rtol=1e-4, atol=1e-4)
    audio = renderer.decode(latents, plan)
    reference = model.pretransform.decode(x0)[0, :, :plan.samples].numpy()
    np.testing.assert_allclose(audio, reference, rtol=1e-4, atol=1e-4)


class WindowMeanStub(OracleStub):
    """Like ``OracleStub`` but x0 is the MEAN of the window's sustain rows: a context-dependent answer, so
    overlapping windows disagree about the frames they share."""

    def target(self, structure: torch.Tensor) -> torch.Tensor:
        per_window = structure[:, 128:256].sum(1).mean(-1)                    # (b,)
        return per_window[:, None, None] * self.mix[None, :, None] * torch.ones_like(structure[:, :1])


def test_windows_that_disagree_meet_in_a_linear_crossfade_not_a_jump():
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(tiny_config()).eval()
    model.model = WindowMeanStub(model.io_channels)
    renderer = MidiToAudio(model, tiny_config(), MidiToAudioOptions(steps=3, window_overlap=32 * RATIO / SR))
    score = long_score(2.26)
    plan = renderer.plan(score)
    metadata = renderer.window_metadata(score, plan, "x")
    latents = renderer.generate_latents(metadata, plan)[0, 0]                 # one latent channel (n,)
    with torch.no_grad():
        means = [float(model.conditioner([md], "cpu")["midi"][0][0, 128:256].sum(0).mean()) for md in metadata]
    assert max(means) - min(means) > 0.2 * max(means)  # the windows do disagree
    # every frame is a convex blend of the windows covering it: outside overlaps exactly that window's value,
    # across an overlap a linear ramp between the two (hand-computed here from the window geometry)
    expected = torch.zeros(plan.frames, dtype=torch.float64)
    for i, start in enumerate(plan.starts):
        for f in range(start, start + WINDOW):
            prev_end = plan.starts[i - 1] + WINDOW if i > 0 else -1
            next_start = plan.starts[i + 1] if i + 1 < len(plan.starts) else plan.frames + 1
            w_in = (f - start + 0.5) / (prev_end - start) if f < prev_end else 1.0
            w_out = (start + WINDOW - f - 0.5) / (start + WINDOW - next_start) if f >= next_start else 1.0
            expected[f] += min(w_in, w_out) * means[i]
    scale = float(model.model.mix[0])
    torch.testing.assert_close(latents.double(), expected * scale, rtol=1e-4, atol=1e-4)
    steps = (latents[1:] - latents[:-1]).abs()
    largest_gap = max(abs(a - b) for a, b in zip(means[:-1], means[1:])) * abs(scale)
    assert float(steps.max()) <= largest_gap / 31  # spread over the ≥ 32-frame overlaps, never a jump


def test_long_midi_through_a_tiny_model_has_the_midis_length_and_no_seams(tmp_path):
    """A 2.5-window piece through a tiny random model saved as an inference checkpoint: the output lasts
    max(end of file, last note end + release), and sample jumps at the joins are no larger than inside windows."""
    config = tiny_config()
    torch.manual_seed(0)
    built = saga_hsmad.create_model_from_config(config)
    save_inference_checkpoint(tmp_path / "tiny.ckpt", built.state_dict(), config, ema=False)
    model, config, _ = load_model(tmp_path / "tiny.ckpt")
    notes = piece_notes(1, 2.5 * WINDOW_SECONDS - 0.5)  # + 0.5 s release: 2.4 to 2.5 windows
    write_midi(tmp_path / "piece.mid", notes)
    renderer = MidiToAudio(model, config, MidiToAudioOptions(steps=4, release=0.5))
    score = renderer.read(tmp_path / "piece.mid")
    audio, plan = renderer.render(score, "a style")
    last_end = max(e for _, _, e, _ in notes)
    assert plan.samples == math.ceil(max(score.end_time, last_end + 0.5) * SR - 1e-9)
    assert audio.shape == (CHANNELS, plan.samples) and np.isfinite(audio).all()
    assert 2.0 < plan.samples / (WINDOW * RATIO) < 3.0 and len(plan.starts) == 3
    jumps = np.abs(np.diff(audio, axis=-1)).max(axis=0)
    joins = sorted({s * RATIO for s in plan.starts[1:]} | {(s + WINDOW) * RATIO for s in plan.starts[:-1]})
    near = np.zeros(jumps.shape, bool)
    for j in joins:
        near[max(0, j - RATIO):j + RATIO] = True
    assert jumps[near].max() <= jumps[~near].max()
    # the envelope neither dips nor bulges at the joins (RMS over RATIO-sample blocks within ±3 dB of the median)
    rms = np.sqrt((audio[:, : audio.shape[1] // RATIO * RATIO].reshape(CHANNELS, -1, RATIO) ** 2).mean(-1))
    level = 20 * np.log10(rms / np.median(rms, axis=1, keepdims=True))
    assert np.abs(level).max() < 3.0


def test_short_piece_is_one_padded_window_cut_to_its_length(tiny_model):
    stub = BranchStub()
    tiny_model.model = stub
    renderer = MidiToAudio(tiny_model, tiny_config(), MidiToAudioOptions(steps=1, release=0.25))
    score = Score.from_notes([(60, 0.1, 0.3, 90)], end_time=0.3)
    plan = renderer.plan(score)
    assert 0.55 < WINDOW_SECONDS  # the piece is shorter than one window
    assert plan.starts == (0,) and plan.frames == WINDOW and plan.samples == round(0.55 * SR)  # 0.55 s
    metadata = renderer.window_metadata(score, plan, "x")
    assert metadata[0]["midi"].valid_seconds == pytest.approx(0.55) and int(metadata[0]["padding_mask"].sum()) == \
        plan.samples
    structure = tiny_model.conditioner(metadata, "cpu")["midi"][0]
    valid = math.ceil(0.55 * SR / RATIO)
    assert bool(structure[0, 384, :valid].all()) and not bool(structure[0, 384, valid:].any())
    audio, _ = renderer.render(score, "x")
    assert audio.shape == (CHANNELS, plan.samples)
    assert piece_seconds(Score.from_notes([(60, 0.0, 0.2, 90)], end_time=2.0), 0.5) == 2.0  # file end wins


# -- long pieces: window groups bound memory and time per step ------------------------------------------------
def test_a_long_piece_is_sampled_group_by_group(tiny_model, monkeypatch):
    """Before, every window of the piece was conditioned at once and every Euler step ran all of them (a 10-minute
    piece: 6 GB, 2 minutes per step). Now a group of ``group_windows`` windows is conditioned, sampled over all
    steps and decoded before the next: no forward, no conditioning call ever holds more than one group."""
    from saga_hsmad.inference import midi_to_audio

    stub = BranchStub()
    tiny_model.model = stub
    conditioned: list[int] = []
    original = midi_to_audio.conditioning_inputs
    monkeypatch.setattr(midi_to_audio, "conditioning_inputs",
                        lambda model, metadata, device: conditioned.append(len(metadata)) or original(model, metadata,
                                                                                                     device))
    renderer = MidiToAudio(tiny_model, tiny_config(), MidiToAudioOptions(steps=2, batch_windows=3, group_windows=3))
    score = long_score(5.68)
    plan = renderer.plan(score)
    assert len(plan.starts) == 8
    groups = plan.groups(3)
    assert [len(g.starts) for g in groups] == [3, 3, 2]
    assert [g.offset for g in groups] == [plan.starts[0], plan.starts[3], plan.starts[6]]
    audio, _ = renderer.render(score, "x")
    assert audio.shape == (CHANNELS, plan.samples)
    assert conditioned == [3, 3, 2]
    assert stub.calls == [9, 9, 9, 9, 6, 6]  # each group: all its steps, its three branches in one forward


def test_a_piece_that_fits_one_group_renders_as_before(tiny_model):
    """A piece of at most ``group_windows`` windows is one group: the same latent (all windows fused on one latent,
    noise from --seed) and the same audio as the whole-piece path, bit for bit."""
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(tiny_config()).eval()
    renderer = MidiToAudio(model, tiny_config(), MidiToAudioOptions(steps=2, batch_windows=2))
    score = long_score(2.26)
    plan = renderer.plan(score)
    assert 3 <= len(plan.starts) <= renderer.options.group_windows and plan.groups(8) == [plan]
    whole = renderer.decode(renderer.generate_latents(renderer.window_metadata(score, plan, "x"), plan), plan)
    audio, _ = renderer.render(score, "x")
    assert np.array_equal(audio, whole)


def test_groups_reproduce_the_whole_piece_without_seams():
    """With the oracle backbone every group lands on the whole piece's x0 over its span, and the crossfade of two
    groups' identical overlapping audio is the audio itself: the grouped output equals the decode of x0."""
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(tiny_config()).eval()
    model.model = OracleStub(model.io_channels)
    renderer = MidiToAudio(model, tiny_config(), MidiToAudioOptions(steps=4, group_windows=2))
    score = long_score(3.69)
    plan = renderer.plan(score)
    assert len(plan.groups(2)) >= 3
    audio, _ = renderer.render(score, "x")
    whole = renderer.spec.srm(score, plan.frames * RATIO / SR)[None]
    with torch.no_grad():
        reference = model.pretransform.decode(model.model.target(whole))[0, :, :plan.samples].numpy()
    np.testing.assert_allclose(audio, reference, rtol=1e-4, atol=1e-4)


def test_group_joins_of_a_random_model_have_no_seam_and_do_not_depend_on_batch_windows():
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(tiny_config()).eval()
    score = long_score(3.69)
    out = []
    for batch_windows in (1, 2):
        renderer = MidiToAudio(model, tiny_config(), MidiToAudioOptions(steps=3, batch_windows=batch_windows,
                                                                       group_windows=2))
        out.append(renderer.render(score, "x")[0])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-4, atol=1e-5)
    audio = out[0]
    plan = renderer.plan(score)
    groups = plan.groups(2)
    assert audio.shape == (CHANNELS, plan.samples) and np.isfinite(audio).all() and len(groups) >= 3
    jumps = np.abs(np.diff(audio, axis=-1)).max(axis=0)
    joins = [g.offset * RATIO for g in groups[1:]] + [(g.offset + g.frames) * RATIO for g in groups[:-1]]
    near = np.zeros(jumps.shape, bool)
    for j in joins:
        near[max(0, j - RATIO):j + RATIO] = True
    assert jumps[near].max() <= jumps[~near].max()
    # the envelope (RMS over RATIO-sample blocks, dB from the median) neither dips nor bulges where groups overlap
    # beyond what this random model does inside a group
    blocks = audio.shape[1] // RATIO
    rms = np.sqrt((audio[:, :blocks * RATIO].reshape(CHANNELS, -1, RATIO) ** 2).mean(-1))
    level = np.abs(20 * np.log10(rms / np.median(rms, axis=1, keepdims=True))).max(0)
    overlap = np.zeros(blocks, bool)
    for before, after in zip(groups[:-1], groups[1:]):
        overlap[after.offset:before.offset + before.frames] = True
    assert overlap.any() and level[overlap].max() <= level[~overlap].max()


@pytest.mark.parametrize("release", [1e5, 10.5, -0.1, math.nan, math.inf])
def test_absurd_release_is_refused_up_front(tiny_model, release):
    """--release 1e5 asked for a day of audio and died out of memory; now the library refuses it (0..10 s)."""
    with pytest.raises(ValueError, match=r"release .* must be .* 0 and 10 s"):
        MidiToAudio(tiny_model, tiny_config(), MidiToAudioOptions(release=release))
    with pytest.raises(ValueError, match="release"):
        piece_seconds(Score.from_notes([(60, 0.0, 1.0, 80)]), release)
    assert piece_seconds(Score.from_notes([(60, 0.0, 1.0, 80)]), 10.0) == 11.0


@pytest.mark.parametrize("field, value", [("w_structure", math.nan), ("w_style", math.inf), ("group_windows", 0),
                                          ("window_overlap", math.nan), ("temperature", 0.0),
                                          ("temperature", -1.0), ("temperature", math.nan)])
def test_other_bad_options_are_refused(tiny_model, field, value):
    with pytest.raises(ValueError, match=field.replace("_", "[-_]")):
        MidiToAudio(tiny_model, tiny_config(), MidiToAudioOptions(**{field: value}))


# -- one conditioning path with training --------------------------------------------------------------------
def test_sampler_windows_carry_the_training_items_keys_and_structure(tiny_model, tmp_path):
    config = tiny_config()
    root = write_corpus(tmp_path / "corpus", n=1, seconds=2 * WINDOW_SECONDS)  # two windows: the first is all valid
    audio, metadata = corpus_batch(config, tiny_model, root, batch=1)
    item = metadata[0]
    renderer = MidiToAudio(tiny_model, config, MidiToAudioOptions(steps=1))
    score = renderer.read(item["midi_path"])
    plan = renderer.plan(score)
    from saga_hsmad.inference.midi_to_audio import style_for

    window = renderer.window_metadata(score, plan, style_for(Path(item["midi_path"]), None, config))[0]
    assert set(window) <= set(item) and window["style"] == item["style"] == "Test piece 0"
    tiny_model.conditioner.eval()
    sampled = tiny_model.conditioner([window], "cpu")["midi"][0]
    trained = tiny_model.conditioner([item], "cpu")["midi"][0]
    assert sampled.shape == trained.shape == (1, 406, WINDOW)
    torch.testing.assert_close(sampled[:, :385], trained[:, :385])  # S_sync and mask; labels: training only
    assert float(sampled[:, 384].sum()) == WINDOW and float(sampled[:, 385:].abs().sum()) == 0.0


# -- the command line ----------------------------------------------------------------------------------------
def test_cli_writes_good_files_reports_bad_ones_and_keeps_existing_outputs(tmp_path, capsys):
    import sample

    config = tiny_config()
    torch.manual_seed(0)
    save_inference_checkpoint(tmp_path / "tiny.ckpt", saga_hsmad.create_model_from_config(config).state_dict(),
                              config, ema=False)
    midi_dir = tmp_path / "midi"
    midi_dir.mkdir()
    write_midi(midi_dir / "good.mid", piece_notes(2, 0.8))
    (midi_dir / "broken.mid").write_bytes(b"MThd garbage")
    out = tmp_path / "out"
    args = ["--ckpt", str(tmp_path / "tiny.ckpt"), "--output", str(out), "--midi", str(midi_dir), "--steps", "2",
            "--device", "cpu", "--style", "Solo piano"]
    assert sample.main(args) == 1
    err = capsys.readouterr().err
    assert "ERROR" in err and "broken.mid" in err
    audio, sr = sf.read(out / "good.wav", always_2d=True)
    parsed = read_midi(midi_dir / "good.mid")
    assert sr == SR and audio.shape == (math.ceil(piece_seconds(parsed, 0.5) * SR - 1e-9), CHANNELS)
    assert not (out / "broken.wav").exists()
    mtime = (out / "good.wav").stat().st_mtime_ns
    assert sample.main(args) == 1
    assert "not overwritten" in capsys.readouterr().out and (out / "good.wav").stat().st_mtime_ns == mtime
    assert sample.main(["--ckpt", str(tmp_path / "tiny.ckpt"), "--output", str(out), "--device", "cpu"]) == 2


def test_cli_warns_about_midi_repairs_and_writes_no_file_for_non_finite_output(tmp_path, capsys, monkeypatch):
    import mido
    import sample

    from saga_hsmad.inference import midi_to_audio

    config = tiny_config()
    torch.manual_seed(0)
    save_inference_checkpoint(tmp_path / "tiny.ckpt", saga_hsmad.create_model_from_config(config).state_dict(),
                              config, ema=False)
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=0, time=0),
                                      mido.Message("note_on", note=60, velocity=80, time=0),
                                      mido.Message("note_off", note=60, velocity=0, time=480)]))
    midi = tmp_path / "tempo0.mid"
    mid.save(midi)
    out = tmp_path / "out"
    args = ["--ckpt", str(tmp_path / "tiny.ckpt"), "--output", str(out), "--midi", str(midi), "--steps", "1",
            "--device", "cpu", "--style", "Solo piano"]
    assert sample.main(args) == 0
    err = capsys.readouterr().err
    assert f"WARNING {midi}: set_tempo of 0 us per quarter note (an infinite tempo) at tick 0 skipped" in err
    assert sf.info(str(out / "tempo0.wav")).duration == pytest.approx(1.0, abs=1e-4)  # 0.5 s at 120 bpm + release
    # a model whose output is not finite: one ERROR line, no file (not even a hidden partial one), exit 1
    monkeypatch.setattr(midi_to_audio, "decode",
                        lambda model, latents: torch.full((1, CHANNELS, latents.shape[-1] * RATIO), math.nan))
    assert sample.main(args + ["--overwrite", "--output", str(tmp_path / "nan")]) == 1
    err = capsys.readouterr().err
    assert f"ERROR {midi}: the model produced NaN or Inf samples" in err
    assert not (tmp_path / "nan").exists() or not any((tmp_path / "nan").iterdir())


def test_mode_is_chosen_for_mrci_unet_models():
    assert MODE.matches(tiny_config()) and not MODE.matches({"model": {"diffusion": {"type": "dit"}}})


# -- train.py → sample.py on the demo corpus --------------------------------------------------------------------
@pytest.mark.slow
def test_train_two_steps_then_sample_midi(demo_corpus, tmp_path):
    env = {"SAGA_HSMAD_DEMO_CORPUS": str(demo_corpus), "OMP_NUM_THREADS": "1"}
    run_script("train.py", "--model-config", str(CONFIG), "--dataset-config",
               str(REPO / "dataset_configs/hsmad/demo.json"), "--save-dir", str(tmp_path), "--name", "hsmad",
               "--batch-size", "2", "--num-workers", "0", "--accelerator", "cpu", "--max-steps", "2",
               "--checkpoint-every", "1", env=env)
    export = tmp_path / "hsmad" / "export.safetensors"
    assert read_checkpoint(export, with_ema_flag=True)[3]  # EMA weights exported
    midi = sorted((demo_corpus / "test").glob("*.mid"))[0]
    out = tmp_path / "samples"
    proc = run_script("sample.py", "--ckpt", str(export), "--midi", str(midi), "--output", str(out), "--steps", "2",
                      "--device", "cpu", env=env)
    assert "mode midi" in proc.stdout
    audio, sr = sf.read(out / (midi.stem + ".wav"), always_2d=True)
    parsed = read_midi(midi)
    assert sr == SR and audio.shape[1] == CHANNELS
    assert audio.shape[0] == math.ceil(piece_seconds(parsed, 0.5) * SR - 1e-9)
