"""The "hierarchical_midi" structure conditioner (HS-MAD spec §1–§3): latent rate from the model's pretransform,
packing round trip through structure_packing.unpack_structure, labels at the encoder's factors, factor and
setting mismatches, and one forward of a tiny HS-MAD model built from JSON."""
from __future__ import annotations

import inspect
import math

import mido
import pytest
import torch

from saga_hsmad.conditioners.hierarchical_midi import (RENDER_DEFAULTS, HierarchicalMidiConditioner, ScoreWindow,
                                                       StructureRender, check_config, check_dataset_config)
from saga_hsmad.models.structure_packing import SRM_CHANNELS, label_slice, structure_channels, unpack_structure
from saga_hsmad.pretransforms.patch_pretransform import PatchPretransform
from saga_hsmad.symbolic.labels import derive_labels
from saga_hsmad.symbolic.midi import Score, read_midi
from saga_hsmad.symbolic.srm import render_srm

SR, RATIO = 22050, 256
FR = SR / RATIO                       # 86.1328125 latent frames per second
T_H = 256
DUR = T_H / FR                        # 2.972 s: exactly 256 frames, a multiple of R1·R2 = 16
C_FULL, C_BARE = structure_channels(with_labels=True), structure_channels()   # 406, 385
C_MAJOR = [[60, 0.2, 1.6, 100], [64, 0.2, 1.6, 90], [67, 0.2, 1.6, 80], [72, 1.0, 2.5, 110]]


def conditioner(ratio: int = RATIO, **kwargs) -> HierarchicalMidiConditioner:
    return HierarchicalMidiConditioner(output_dim=32,
                                       pretransform=PatchPretransform(patch_size=ratio, orthogonal_mix=False),
                                       sample_rate=SR, **kwargs)


def tempo_midi(path, bpm: float = 100.0, ts: bool = True):
    """A C-major chord every beat for 4 s at ``bpm`` (3/4 if ``ts``)."""
    ppq = 480
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    if ts:
        conductor.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    events = []                                        # (tick, is_on, pitch); off sorts before on
    for k in range(int(4.0 * bpm / 60)):
        for p in (60, 64, 67):
            events += [(k * ppq, 1, p), (k * ppq + ppq // 2, 0, p)]
    track, now = mido.MidiTrack(), 0
    for tick, on, p in sorted(events):
        track.append(mido.Message("note_on", note=p, velocity=90 if on else 0, time=tick - now))
        now = tick
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    mid.tracks += [conductor, track]
    mid.save(str(path))
    return read_midi(path)


def test_latent_rate_comes_from_the_models_pretransform():
    score = Score.from_notes([[60, 1.0, 1.2, 127]], end_time=DUR)
    for ratio in (256, 512):
        x, mask = conditioner(ratio)([ScoreWindow(score, DUR)], "cpu")
        frames = math.floor(DUR * SR / ratio)          # T_H = floor(duration × sample_rate / R_VAE)
        assert x.shape == (1, C_FULL, frames) and mask.shape == (1, frames)
        assert int(x[0, 60].argmax()) == round(1.0 * SR / ratio)
        assert float(x[0, 60].max()) == pytest.approx(math.exp(-((round(SR / ratio) * ratio / SR - 1.0) ** 2)
                                                               / (2 * (ratio / (2 * SR)) ** 2)), rel=1e-5)

    class CodecLike:                                   # a pretransform that knows its sample rate
        downsampling_ratio, sample_rate = 512, 44100

    cond = HierarchicalMidiConditioner(pretransform=CodecLike())
    assert cond.spec().frame_rate == 44100 / 512
    no_rate = HierarchicalMidiConditioner(pretransform=PatchPretransform(patch_size=RATIO, orthogonal_mix=False))
    with pytest.raises(ValueError, match="needs the audio sample rate"):
        no_rate([ScoreWindow(score, DUR)], "cpu")


def test_packing_round_trip_against_srm_and_labels(tmp_path):
    scores = [Score.from_notes(C_MAJOR, end_time=DUR), tempo_midi(tmp_path / "tempo.mid")]
    cond = conditioner()
    x, mask = cond([ScoreWindow(s, DUR) for s in scores], "cpu")
    assert x.shape == (2, C_FULL, T_H) and x.dtype == torch.float32 and mask.dtype == torch.bool
    srm, unpacked_mask, labels = unpack_structure(x, factors=(4, 4))
    assert torch.equal(unpacked_mask, mask) and bool(mask.all())
    for i, score in enumerate(scores):
        assert torch.equal(srm[i], render_srm(score, DUR, FR))
        reference = derive_labels(score, DUR, FR, (4, 4))
        assert set(labels) == set(reference)
        for name, value in reference.items():
            assert torch.equal(labels[name][i], value), name
    # hand-computed: the C-major chord → key C major (0) everywhere; a T_M frame at 0.5 s holds C, E, G equally
    assert labels["key"][0].eq(0).all() and labels["key_mask"][0].all()
    frame_m = math.floor(0.5 * FR / 4)
    third = [1 / 3 if pc in (0, 4, 7) else 0.0 for pc in range(12)]
    assert labels["chroma"][0, frame_m].tolist() == pytest.approx(third)
    # a note list has no tempo map: tempo and beats masked; the 100 bpm 3/4 file has both
    assert not labels["tempo_mask"][0].any() and not labels["beat_mask"][0].any()
    assert labels["tempo_mask"][1].all()
    assert labels["tempo"][1].tolist() == pytest.approx([math.log2(100 / 120)] * (T_H // 16))
    beat_frames = {math.floor(k * 0.6 * FR / 4) for k in range(5)}          # beats every 0.6 s within 2.97 s
    assert set(torch.nonzero(labels["beat"][1]).flatten().tolist()) == beat_frames
    assert set(torch.nonzero(labels["downbeat"][1]).flatten().tolist()) == {0, math.floor(1.8 * FR / 4)}
    assert labels["beat_mask"][1].all() and labels["downbeat_mask"][1].all()


def test_downbeats_masked_without_time_signature(tmp_path):
    """A tempo map without a time signature: beats are known, bars are not (never guessed)."""
    score = tempo_midi(tmp_path / "no_ts.mid", ts=False)
    labels = unpack_structure(conditioner()([ScoreWindow(score, DUR)], "cpu")[0], factors=(4, 4))[2]
    assert labels["tempo_mask"].all() and labels["beat_mask"].all() and not labels["downbeat_mask"].any()


def test_padding_frames_are_masked_and_zeroed():
    score = Score.from_notes(C_MAJOR, end_time=DUR)
    x, mask = conditioner()([{"score": score, "duration": DUR, "valid_seconds": 1.0}], "cpu")
    valid = math.ceil(1.0 * FR)                        # frames starting before 1.0 s
    assert int(mask.sum()) == valid and bool(mask[0, :valid].all())
    assert float(x[0, :SRM_CHANNELS, valid:].abs().max()) == 0.0
    chroma_mask = x[0, label_slice("chroma_mask")][0]
    assert float(chroma_mask[math.ceil(valid / 4) * 4:].abs().max()) == 0.0


def test_score_windows_get_labels_only_in_training_mode():
    score = Score.from_notes(C_MAJOR, end_time=DUR)
    cond = conditioner()
    trained = cond([ScoreWindow(score, DUR)], "cpu")[0]
    cond.eval()
    sampled = cond([ScoreWindow(score, DUR)], "cpu")[0]
    assert sampled.shape == trained.shape
    assert torch.equal(sampled[:, : SRM_CHANNELS + 1], trained[:, : SRM_CHANNELS + 1])
    assert float(trained[:, SRM_CHANNELS + 1:].abs().sum()) > 0
    assert float(sampled[:, SRM_CHANNELS + 1:].abs().sum()) == 0.0


def test_prerendered_items_label_block_added_or_stripped():
    score = Score.from_notes(C_MAJOR, end_time=DUR)
    full = StructureRender(SR, RATIO).render(score, DUR)                     # (406, T_H)
    bare = StructureRender(SR, RATIO, with_labels=False).render(score, DUR)  # (385, T_H)
    assert full.shape == (C_FULL, T_H) and bare.shape == (C_BARE, T_H)
    x, _ = conditioner()([bare, full], "cpu")
    assert torch.equal(x[0, :C_BARE], bare) and float(x[0, C_BARE:].abs().sum()) == 0.0
    assert torch.equal(x[1], full)
    x, _ = conditioner(with_labels=False)([full, {"structure": bare}], "cpu")
    assert x.shape == (2, C_BARE, T_H) and torch.equal(x[0], full[:C_BARE]) and torch.equal(x[1], bare)
    with pytest.raises(ValueError, match=r"item 0 has shape \(384, 256\)"):
        conditioner()([full[:384]], "cpu")
    with pytest.raises(TypeError, match="item 0 is a str"):
        conditioner()(["C major"], "cpu")


def test_window_length_and_factor_mismatches_raise():
    score = Score.from_notes(C_MAJOR, end_time=DUR)
    with pytest.raises(ValueError, match=r"T_H = 250 .*multiple of R1·R2 = 16.*240 or 256 latent frames"):
        conditioner()([ScoreWindow(score, 250 / FR)], "cpu")
    record = StructureRender(SR, RATIO, factors=(2, 4))
    item = {"structure": record.render(score, DUR), "render": record.as_dict()}
    with pytest.raises(ValueError, match=r"factors = \[2, 4\] in the data, \[4, 4\] in the model"):
        conditioner()([item], "cpu")
    with pytest.raises(ValueError, match="factors must be two positive integers"):
        conditioner(factors=[4])


def model_config(cond_factors=None, unet_factors=(4, 4), sample_size=T_H * RATIO) -> dict:
    enc = dict(widths=[32, 48, 64], depths=[1, 1, 1], heads=2, ffn_dim=64, conv_kernel=7, dropout=0.0)
    # sample_rate: needed to render Score windows (the builder does not pass it to conditioners yet)
    midi = {"id": "midi", "type": "hierarchical_midi", "config": {"sample_rate": SR}}
    if cond_factors is not None:
        midi["config"]["factors"] = list(cond_factors)
    return {
        "model_type": "diffusion_cond", "sample_rate": SR, "sample_size": sample_size, "audio_channels": 2,
        "model": {
            "io_channels": 2 * RATIO,
            "pretransform": {"type": "patch", "config": {"channels": 2, "patch_size": RATIO, "orthogonal_mix": False}},
            "conditioning": {"cond_dim": 32, "configs": [
                midi, {"id": "style", "type": "t5_local", "config": {"model_name_or_path": "tiny-random",
                                                                     "pooled": True, "max_length": 16}}]},
            "diffusion": {"type": "mrci_unet", "diffusion_objective": "rectified_flow",
                          "input_concat_ids": ["midi"], "global_cond_ids": ["style"],
                          "config": dict(io_channels=2 * RATIO, widths=[32, 48, 64], factors=list(unet_factors),
                                         num_res_blocks=[1, 1, 1], num_transformer_blocks=[1, 1, 1], heads=2,
                                         ffn_mult=2, cond_dim=32, style_dim=32, encoder=enc)},
        },
    }


def test_check_config_finds_factor_route_and_window_problems():
    assert check_config(model_config()) == []
    assert HierarchicalMidiConditioner.check_config(model_config()) == []
    problems = check_config(model_config(cond_factors=(2, 4)))
    assert [p for p, _ in problems] == ["model.conditioning.configs[0].config.factors"]
    assert "differ from the U-Net's model.diffusion.config.factors [4, 4]" in problems[0][1]
    assert [p for p, _ in check_config(model_config(cond_factors=(2, 4), unet_factors=(2, 4)))] == []
    bad = model_config()
    bad["model"]["diffusion"]["config"]["encoder"]["factors"] = [2, 2]
    assert ("model.conditioning.configs[0].config.factors" in [p for p, _ in check_config(bad)])
    unrouted = model_config()
    unrouted["model"]["diffusion"]["input_concat_ids"] = []
    assert [p for p, _ in check_config(unrouted)] == ["model.diffusion.input_concat_ids"]
    problems = check_config(model_config(sample_size=250 * RATIO))
    assert [p for p, _ in problems] == ["sample_size"] and "sample_size 61440 or 65536" in problems[0][1]


def test_check_dataset_config_against_the_model():
    model = model_config()
    assert check_dataset_config({"dataset_type": "midi_audio_folder", "roots": "x"}, model) == []
    problems = check_dataset_config({"structure": {"sigma_on": 0.01, "factors": [4, 4]}}, model)
    assert problems == [("structure.sigma_on", "0.01 but model.conditioning.configs[0].config.sigma_on is None")]
    assert [p for p, _ in check_dataset_config({"structure_id": "notes"}, model)] == ["structure_id"]


def test_owns_no_weights_and_defaults_match_the_render():
    cond = conditioner()
    assert list(cond.parameters()) == [] and len(cond.state_dict()) == 0
    params = inspect.signature(HierarchicalMidiConditioner).parameters
    for key, default in RENDER_DEFAULTS.items():
        assert params[key].default == default, key


def test_tiny_hsmad_model_forward_from_json():
    import saga_hsmad

    config = model_config()
    wrapper = saga_hsmad.create_model_from_config(config)
    score = Score.from_notes(C_MAJOR, end_time=DUR)
    metadata = [{"midi": ScoreWindow(score, DUR), "style": "Classical Piano Performance"},
                {"midi": ScoreWindow(score.window(0.5, DUR - 0.5), DUR, valid_seconds=DUR - 0.5), "style": "Rock"}]
    wrapper.conditioner.train()
    cond = wrapper.conditioner(metadata, "cpu")
    inputs = wrapper.get_conditioning_inputs(cond)
    assert inputs["input_concat_cond"].shape == (2, C_FULL, T_H) and inputs["global_cond"].shape == (2, 32)
    torch.manual_seed(0)
    x = torch.randn(2, 2 * RATIO, T_H)
    with torch.no_grad():
        v = wrapper.model(x, torch.rand(2), **inputs)
    assert v.shape == x.shape and torch.isfinite(v).all()
    assert set(wrapper.model.aux_losses) == {"chroma", "beat", "tempo", "key"}
