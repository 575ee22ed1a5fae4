"""The sampling cache of HS-MAD's hierarchical symbolic encoder: the encoder runs once per sampling run (per
window group, all guidance branches in one call) instead of once per Euler step, the output equals recomputing
it every step (full MIDI-to-audio generation, every symbol mode, padded structure, branch nulls), the cache is
scoped to one run, refuses inputs it was not computed for, and the training forward still runs the encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hsmad_training import piece_notes, write_midi
from test_midi_to_audio import WINDOW_SECONDS, tiny_config
from test_mrci_unet import B, all_null, build, liven, make_inputs

import saga_hsmad
from saga_hsmad.inference.guidance import GuidedVelocity, decoupled_guidance
from saga_hsmad.inference.midi_to_audio import MidiToAudio, MidiToAudioOptions
from saga_hsmad.inference.sampler import sample_euler


def count_encoder_calls(model: torch.nn.Module) -> list[int]:
    """Batch sizes of every call of the backbone's symbolic encoder, from now on."""
    calls: list[int] = []
    model.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    return calls


@pytest.fixture(scope="module")
def live_tiny_model():
    """The tiny HS-MAD config with random weights everywhere (zero-initialised gates and modulations too, so the
    symbol features reach the output through every TCA and SCM)."""
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(tiny_config()).eval()
    liven(model.model)
    return model


def render(model, midi, cache: bool, steps: int = 3, batch_windows: int = 2) -> tuple[np.ndarray, list[int]]:
    calls = count_encoder_calls(model.model)
    options = MidiToAudioOptions(steps=steps, batch_windows=batch_windows, seed=5, cache_conditioning=cache)
    renderer = MidiToAudio(model, tiny_config(), options)
    audio, plan = renderer.render(renderer.read(midi), "Solo piano")
    assert len(plan.starts) == 3  # windows {0, 1} in one forward, {2} in another
    model.model.encoder._forward_hooks.clear()
    return audio, calls


# -- equality with the per-step encoder ------------------------------------------------------------------------
def test_midi_to_audio_with_cache_equals_recomputing_every_step(live_tiny_model, tmp_path):
    """Full MIDI → audio (read, windows fused per step, decoupled guidance, decode), same seed: identical audio;
    the encoder ran once per window group (all three branches at once) instead of once per step."""
    midi = tmp_path / "piece.mid"
    seconds = 2.5 * WINDOW_SECONDS - 0.5  # + 0.5 s release: 2.4 to 2.5 windows, so three windows
    write_midi(midi, piece_notes(1, seconds))
    cached, cached_calls = render(live_tiny_model, midi, cache=True)
    fresh, fresh_calls = render(live_tiny_model, midi, cache=False)
    steps = 3
    assert cached_calls == [3 * 2, 3 * 1]
    assert fresh_calls == [3 * 2, 3 * 1] * steps
    assert np.isfinite(cached).all() and cached.shape == fresh.shape
    np.testing.assert_allclose(cached, fresh, rtol=0, atol=1e-6 * float(np.abs(fresh).max()))
    # the comparison can fail: another score (the same notes a fourth up) gives other audio through this model
    other = tmp_path / "other.mid"
    write_midi(other, [(pitch + 5, start, end, velocity) for pitch, start, end, velocity in piece_notes(1, seconds)])
    elsewhere, _ = render(live_tiny_model, other, cache=True)
    assert elsewhere.shape == cached.shape and float(np.abs(elsewhere - cached).max()) > 1e-3 * float(
        np.abs(cached).max())


@pytest.mark.parametrize("mode", ["hierarchical", "global", "flat"])
@pytest.mark.parametrize("w_h, w_s", [(2.0, 1.5), (0.0, 0.0)])
def test_guided_sampling_with_cache_equals_without_in_every_symbol_mode(mode, w_h, w_s):
    """Padded structure (a masked tail), three branches with their own structure nulls: every Euler step's
    velocity and the final latent are the same with and without the cache."""
    model = liven(build(symbol_mode=mode))
    inputs = make_inputs(padded=True)
    x, _ = inputs.pop("x"), inputs.pop("t")
    guidance = decoupled_guidance(w_h, w_s)
    calls = count_encoder_calls(model)
    with torch.no_grad():
        cached = GuidedVelocity(model, inputs, guidance, model.condition_names, B, x.device)
        fresh = GuidedVelocity(model, inputs, guidance, model.condition_names, B, x.device, cache_conditioning=False)
        assert calls == [3 * B]  # precomputed once, for all branches
        steps = torch.linspace(1.0, 0.0, 5)
        out_cached = sample_euler(cached, x, steps)
        assert calls == [3 * B]  # no step ran the encoder
        out_fresh = sample_euler(fresh, x, steps)
        assert calls == [3 * B] * 5
        # and against separate forwards with explicit per-branch nulls (the guidance formula)
        t = torch.full((B,), 0.7)
        uncond = model(x, t, **inputs, null_conditions=all_null(B, True, True))
        v_h = model(x, t, **inputs, null_conditions=all_null(B, False, True))
        v_s = model(x, t, **inputs, null_conditions=all_null(B, True, False))
        expected = uncond + w_h * (v_h - uncond) + w_s * (v_s - uncond)
        torch.testing.assert_close(cached(x, t), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(out_cached, out_fresh, atol=1e-6, rtol=1e-6)
    if w_h != 0.0:  # the structure matters (else the equality above would be empty)
        with torch.no_grad():
            other = dict(inputs, input_concat_cond=make_inputs(padded=True, seed=9)["input_concat_cond"])
            moved = sample_euler(GuidedVelocity(model, other, guidance, model.condition_names, B, x.device), x,
                                 steps)
        assert float((moved - out_cached).abs().max()) > 1e-3


def test_branch_caches_hold_the_learned_nulls_per_branch():
    """The cached features of a branch that nulls the structure are the learned null tokens with an all-valid mask;
    the structure-keeping branch holds the encoder's own features and the padding mask."""
    model = liven(build())
    inputs = make_inputs(padded=True)
    inputs.pop("x"), inputs.pop("t")
    velocity = GuidedVelocity(model, inputs, decoupled_guidance(2.0, 1.5), model.condition_names, B,
                              torch.device("cpu"))
    symbols = velocity.kwargs["symbol_contexts"]
    with torch.no_grad():
        levels, _ = model.encode_symbols(inputs["input_concat_cond"])
    # branches: (∅_H, ∅_S), (C_H, ∅_S), (∅_H, C_S), each B items
    for level, name in (("high", "event"), ("middle", "local"), ("bottleneck", "global")):
        features, mask = symbols.contexts[level]
        for branch in range(3):
            rows = slice(branch * B, (branch + 1) * B)
            if branch == 1:
                torch.testing.assert_close(features[rows], levels.features[name])
                assert torch.equal(mask[rows], levels.masks[name]) and not bool(mask[rows].all())
            else:
                null = model.null_symbols[name].detach()
                assert torch.equal(features[rows], null.expand_as(features[rows]))
                assert bool(mask[rows].all())


# -- scope: explicit, per run, never in training ----------------------------------------------------------------
def test_training_forward_still_runs_the_encoder_with_gradients_and_aux_losses():
    model = liven(build(cond_dropout={"structure": 0.5, "style": 0.5}))
    inputs = make_inputs(labels=True)
    x, t = inputs.pop("x"), inputs.pop("t")
    with torch.no_grad():  # a sampling run first: it must leave nothing behind
        GuidedVelocity(model, inputs, decoupled_guidance(2.0, 1.5), model.condition_names, B, x.device)(x, t)
    calls = count_encoder_calls(model)
    model.train()
    for _ in range(2):
        model.zero_grad()
        v = model(x, t, **inputs, cfg_dropout_prob=0.1)
        loss = v.square().mean() + sum(model.aux_losses.values())
        loss.backward()
        assert set(model.aux_losses) >= {"chroma", "key"}
        grads = [p.grad for p in model.encoder.parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert calls == [B, B]


def test_a_cache_refuses_inputs_it_was_not_computed_for():
    model = build()
    inputs = make_inputs()
    x, t = inputs.pop("x"), inputs.pop("t")
    nulls = all_null(B, False, False)
    symbols = model.precompute_conditioning(inputs, nulls)["symbol_contexts"]
    with torch.no_grad():  # the same inputs, even as other tensor objects, are accepted
        same = {k: v.clone() for k, v in inputs.items()}
        torch.testing.assert_close(model(x, t, **same, null_conditions={k: v.clone() for k, v in nulls.items()},
                                         symbol_contexts=symbols),
                                   model(x, t, **inputs, null_conditions=nulls), atol=1e-6, rtol=0)
    other = make_inputs(seed=7)["input_concat_cond"]
    with pytest.raises(ValueError, match="different input_concat_cond"):
        model(x, t, **dict(inputs, input_concat_cond=other), null_conditions=nulls, symbol_contexts=symbols)
    with pytest.raises(ValueError, match="null mask"):
        model(x, t, **inputs, null_conditions=all_null(B, True, False), symbol_contexts=symbols)
    with pytest.raises(ValueError, match="training condition dropout"):
        model(x, t, **inputs, cfg_dropout_prob=0.1, symbol_contexts=symbols)
    with pytest.raises(ValueError, match="cfg_scale"):
        model(x, t, **inputs, cfg_scale=3.0, symbol_contexts=symbols)
    with pytest.raises(ValueError, match="batch of 2, called with 4"):
        model(torch.cat([x, x]), torch.cat([t, t]), **{k: torch.cat([v, v]) for k, v in inputs.items()},
              symbol_contexts=symbols)
    assert model.precompute_conditioning({"global_cond": inputs["global_cond"]}, nulls) == {}
