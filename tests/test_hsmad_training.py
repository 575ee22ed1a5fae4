"""HS-MAD training through the registered wrapper (spec §5): every tiny config (HS-MAD and each baseline /
ablation twin) runs one optimiser step on a batch from the midi_audio_folder dataset over a synthetic corpus,
and the aux-loss wrapper returns flow loss + Σ w·aux with every term logged and gradients at the heads."""
from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, StepHarness

import saga_hsmad
from saga_hsmad.conditioners.hierarchical_midi import RENDER_KEYS
from saga_hsmad.data.loader import create_dataloader_from_config
from saga_hsmad.training.aux_losses import AuxLossTrainingWrapper

CONFIGS = REPO / "model_configs" / "hsmad"
TINY = ["tiny"] + [f"tiny_{name}" for name in ("baseline_global", "baseline_flat", "no_scm", "no_mrci_high",
                                                "no_mrci_middle", "no_mrci_bottleneck", "no_aux", "binary_srm")]
SR = 44100


# -- helpers shared with test_dac_local / test_midi_to_audio ------------------------------------------------
def write_midi(path: Path, notes: list[tuple[int, float, float, int]], bpm: float = 100.0) -> None:
    """A type-1 MIDI file with a tempo (not 120 bpm, so it counts as tempo information), 4/4 and ``notes``
    (pitch, start s, end s, velocity) on channel 0."""
    ppq, us = 480, int(round(60e6 / bpm))
    ticks = lambda s: int(round(s * 1e6 / us * ppq))  # noqa: E731
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=us, time=0),
                           mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    events = sorted([(ticks(s), 1, p, v) for p, s, _, v in notes] + [(ticks(e), 0, p, 0) for p, _, e, _ in notes])
    track, now = mido.MidiTrack(), 0
    for tick, on, pitch, vel in events:
        track.append(mido.Message("note_on" if on else "note_off", note=pitch, velocity=vel, time=tick - now))
        now = tick
    mid.tracks += [meta, track]
    mid.save(str(path))


def render_notes(notes, seconds: float, sr: int = SR, channels: int = 2) -> np.ndarray:
    """Decaying sine tones of the notes: (samples, channels) float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    out = np.zeros_like(t)
    for pitch, start, end, vel in notes:
        f = 440.0 * 2 ** ((pitch - 69) / 12)
        on = (t >= start) & (t < end + 0.05)
        out += on * (vel / 127) * 0.2 * np.sin(2 * np.pi * f * (t - start)) * np.exp(-3 * np.clip(t - start, 0, None))
    return np.repeat(out[:, None], channels, axis=1).astype(np.float32)


def piece_notes(seed: int, seconds: float) -> list[tuple[int, float, float, int]]:
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    while t < seconds - 0.2:
        length = float(rng.choice([0.15, 0.3, 0.45]))
        pitch = int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72]))
        notes.append((pitch, round(t, 4), round(min(t + length, seconds), 4), int(rng.integers(40, 120))))
        if rng.random() < 0.5:
            notes.append((pitch - 12, round(t, 4), round(min(t + 2 * length, seconds), 4), int(rng.integers(40, 120))))
        t += length
    return notes


def write_corpus(root: Path, n: int = 2, seconds: float = 1.5, channels: int = 2, seed: int = 0) -> Path:
    """``n`` pieces ``root/piece<i>.{wav,mid,json}`` (the midi_audio_folder layout) whose audio renders the MIDI."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        notes = piece_notes(seed + i, seconds)
        write_midi(root / f"piece{i}.mid", notes)
        sf.write(root / f"piece{i}.wav", render_notes(notes, seconds, channels=channels), SR)
        (root / f"piece{i}.json").write_text(json.dumps({"style": f"Test piece {i}"}))
    return root


def dataset_config_for(config: dict, root: Path) -> dict:
    """A midi_audio_folder dataset config whose ``structure`` section agrees with the model's conditioner."""
    midi = next(c for c in config["model"]["conditioning"]["configs"] if c["type"] == "hierarchical_midi")
    structure = {k: v for k, v in midi.get("config", {}).items() if k in RENDER_KEYS and k != "with_labels"}
    return {"dataset_type": "midi_audio_folder", "roots": str(root), "random_crop": False, "structure": structure}


def corpus_batch(config: dict, model, root: Path, batch: int = 2):
    """One collated batch (audio, metadata) of the midi_audio_folder dataset over ``root``."""
    ratio = model.pretransform.downsampling_ratio if model.pretransform is not None else 1
    loader = create_dataloader_from_config(dataset_config_for(config, root), batch_size=batch,
                                           sample_size=config["sample_size"], sample_rate=config["sample_rate"],
                                           audio_channels=config.get("audio_channels", 2), shuffle=False,
                                           downsampling_ratio=ratio)
    return next(iter(loader))


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("hsmad_corpus"))


# -- every tiny config trains -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", TINY)
def test_tiny_config_runs_one_optimiser_step(name, corpus):
    config = load(name)
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config)
    wrapper = saga_hsmad.create_training_wrapper_from_config(config, model)
    assert isinstance(wrapper, AuxLossTrainingWrapper)
    wrapper.__class__ = type("Harnessed", (StepHarness, type(wrapper)), {})
    optimizers, _ = wrapper.configure_optimizers()
    before = {k: v.detach().clone() for k, v in model.model.named_parameters()}
    loss = wrapper.training_step(corpus_batch(config, model, corpus), 0)
    loss.backward()
    optimizers[0].step()
    assert torch.isfinite(loss)
    changed = [k for k, v in model.model.named_parameters() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("output_proj") for k in changed)
    aux = set(wrapper.logged) & {"train/aux_chroma", "train/aux_beat", "train/aux_tempo", "train/aux_key"}
    expect_aux = name not in ("tiny_no_aux", "tiny_baseline_flat")  # flat: no local/global level, no heads
    assert aux == ({"train/aux_chroma", "train/aux_beat", "train/aux_tempo", "train/aux_key"} if expect_aux else set())
    # the corpus has a tempo map and 4/4, so every label is derivable: no loss is an exact masked zero
    if expect_aux:
        assert all(float(wrapper.logged[k]) > 0 for k in aux)


# -- the aux-loss wrapper -----------------------------------------------------------------------------------
def test_aux_wrapper_returns_flow_plus_weighted_aux(corpus):
    config = load("tiny")
    weights = {"chroma": 0.3, "beat": 0.2, "tempo": 0.5, "key": 0.7}  # not the defaults: the weights must be used
    config["training"]["aux_loss_weights"] = weights
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config)
    wrapper = saga_hsmad.create_training_wrapper_from_config(config, model)
    wrapper.__class__ = type("Harnessed", (StepHarness, type(wrapper)), {})
    seen = {}
    model.model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(x=args[0], t=args[1]), with_kwargs=True)
    model.model.register_forward_hook(lambda m, args, out: seen.update(v=out))
    audio, metadata = corpus_batch(config, model, corpus)

    loss = wrapper.training_step((audio, metadata), 0)
    aux = model.model.aux_losses
    assert set(aux) == set(weights)
    # the rectified-flow loss recomputed from the backbone's input and output: x_t = (1-t) x0 + t eps, target
    # eps - x0 = (x_t - x0) / t
    x0 = model.pretransform.encode(audio)
    t = seen["t"][:, None, None]
    flow = torch.mean((seen["v"] - (seen["x"] - x0) / t) ** 2)
    expected = flow + sum(weights[k] * aux[k] for k in weights)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    logged = wrapper.logged
    torch.testing.assert_close(logged["train/flow_loss"], flow.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logged["train/total_loss"], expected.detach(), rtol=1e-4, atol=1e-5)
    for k in weights:
        torch.testing.assert_close(logged[f"train/aux_{k}"], aux[k].detach())

    loss.backward()
    for head in ("chroma", "beat", "tempo", "key"):
        grad = model.model.encoder.aux_heads[head].weight.grad
        assert grad is not None and grad.abs().sum() > 0, head


def test_aux_weight_missing_for_a_reported_loss_is_an_error(corpus):
    config = load("tiny")
    config["training"]["aux_loss_weights"] = {"chroma": 0.1, "beat": 0.1}
    model = saga_hsmad.create_model_from_config(config)
    wrapper = saga_hsmad.create_training_wrapper_from_config(config, model)
    wrapper.__class__ = type("Harnessed", (StepHarness, type(wrapper)), {})
    with pytest.raises(KeyError, match=r"auxiliary losses \['key', 'tempo'\] with no weight"):
        wrapper.training_step(corpus_batch(config, model, corpus), 0)
