"""MRCI U-Net backbone (HS-MAD spec §3–§6): SCM zero at init, level alignment, condition dropout and learned
nulls, guidance in one batched forward, auxiliary losses, baselines/ablations as configs, structure packing."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from saga_hsmad.models.mrci_unet import MRCIUNet, SkipModulation, TransformerBlock  # noqa: I001 (before guidance)
from saga_hsmad.inference.guidance import decoupled_guidance, guided_velocity
from saga_hsmad.inference.sampler import sample_euler
from saga_hsmad.models.structure_packing import (LABEL_CHANNELS, LABEL_LAYOUT, label_slice, pack_structure,
                                                 unpack_structure)

ENC = dict(widths=[32, 48, 64], depths=[1, 1, 1], heads=2, ffn_dim=64, conv_kernel=7, dropout=0.0)
TINY = dict(io_channels=8, widths=[32, 48, 64], num_res_blocks=[1, 1, 1], num_transformer_blocks=[1, 1, 1],
            heads=2, ffn_mult=2, cond_dim=32, style_dim=16, encoder=ENC)
B, N = 2, 64


def build(seed: int = 0, **overrides) -> MRCIUNet:
    torch.manual_seed(seed)
    return MRCIUNet(**{**TINY, **overrides}).eval()


def labels_for(b: int, t_m: int, g: torch.Generator) -> dict:
    """Batched labels in ``derive_labels``' layout (T_M = t_m, T_L = t_m / 4)."""
    t_l = t_m // 4
    return {"chroma": torch.rand(b, t_m, 12, generator=g), "chroma_mask": torch.rand(b, t_m, generator=g) > 0.2,
            "beat": (torch.rand(b, t_m, generator=g) > 0.5).float(), "beat_mask": torch.ones(b, t_m, dtype=torch.bool),
            "downbeat": (torch.rand(b, t_m, generator=g) > 0.8).float(),
            "downbeat_mask": torch.ones(b, t_m, dtype=torch.bool),
            "tempo": torch.randn(b, t_l, generator=g), "tempo_mask": torch.ones(b, t_l, dtype=torch.bool),
            "key": torch.randint(0, 24, (b, t_l), generator=g), "key_mask": torch.ones(b, t_l, dtype=torch.bool)}


def make_inputs(b: int = B, n: int = N, labels: bool = False, padded: bool = True, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    srm = torch.rand(b, 384, n, generator=g)
    mask = torch.ones(b, n, dtype=torch.bool)
    if padded:
        mask[-1, n - 24:] = False
    structure = pack_structure(srm, mask, labels_for(b, n // 4, g) if labels else None)
    return dict(x=torch.randn(b, 8, n, generator=g), t=torch.rand(b, generator=g),
                global_cond=torch.randn(b, 16, generator=g), input_concat_cond=structure)


def run(model: MRCIUNet, inputs: dict, **kwargs) -> torch.Tensor:
    inputs = dict(inputs)
    return model(inputs.pop("x"), inputs.pop("t"), **inputs, **kwargs)


def liven(model: nn.Module, skip: str = "\0") -> nn.Module:
    """Give every zero-initialised weight (AdaLN modulations, SCM gates unless ``skip`` is in the name) random
    values, as after some training, so that no condition path is dead."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if skip not in name and float(p.abs().sum()) == 0.0:
                p.normal_(0.0, 0.1)
    return model


def all_null(b: int, structure: bool, style: bool) -> dict:
    return {"structure": torch.full((b,), structure), "style": torch.full((b,), style)}


# -- SCM at initialisation ---------------------------------------------------------------------------
def test_scm_branch_is_exactly_zero_at_init():
    with_scm = liven(build(scm_levels=["high", "middle"]), skip=".scm.")  # AdaLN live: the test is not trivial
    plain = build(seed=1, scm_levels=[])
    missing, unexpected = plain.load_state_dict(with_scm.state_dict(), strict=False)
    assert missing == [] and unexpected and all(".scm." in k for k in unexpected)
    inputs = make_inputs()
    out_scm, out_plain = run(with_scm, inputs), run(plain, inputs)
    assert torch.equal(out_scm, out_plain)
    with torch.no_grad():  # the gate is what keeps it exact: open it and the output moves
        with_scm.up["high"].scm.tca.to_out.weight.normal_()
    assert not torch.allclose(run(with_scm, inputs), out_plain, atol=1e-4)


# -- level alignment ---------------------------------------------------------------------------------
def test_factor_mismatch_raises_at_construction():
    with pytest.raises(ValueError, match=r"encoder\.factors \[2, 4\] differ"):
        MRCIUNet(**{**TINY, "encoder": {**ENC, "factors": [2, 4]}})
    assert build(encoder={**ENC, "factors": [4, 4]}).encoder.factors == (4, 4)  # equal is fine
    assert build(factors=[2, 2]).encoder.factors == (2, 2)  # omitted: inherited from the U-Net


def test_length_errors_at_forward():
    model = build()
    inputs = make_inputs(n=40, padded=False)
    with pytest.raises(ValueError, match=r"n = 40 is not a multiple of R1·R2 = 4·4 = 16"):
        run(model, inputs)
    inputs = make_inputs(n=64)
    inputs["input_concat_cond"] = inputs["input_concat_cond"][..., :48]
    with pytest.raises(ValueError, match="structure input has 48 frames but the latent has 64"):
        run(model, inputs)


def test_symbol_and_unet_levels_have_equal_lengths():
    model = build()
    seen = {}
    for level, module in (("high", model.down["high"]), ("middle", model.down["middle"]),
                          ("bottleneck", model.bottleneck)):
        module.register_forward_hook(lambda m, i, o, level=level: seen.__setitem__(level, o.shape[-1]))
    inputs = make_inputs()
    run(model, inputs)
    levels, _ = model.encode_symbols(inputs["input_concat_cond"])
    assert seen == {"high": 64, "middle": 16, "bottleneck": 4}
    assert [levels.features[k].shape[1] for k in ("event", "local", "global")] == [64, 16, 4]


# -- condition dropout and learned nulls ---------------------------------------------------------------
def test_dropout_rates_independent_per_condition():
    model = build(cond_dropout={"structure": 0.3, "style": 0.2})
    n = 20000
    torch.manual_seed(123)
    nulls = model.null_mask(n, torch.device("cpu"), cfg_dropout_prob=0.1)
    for name, p in (("structure", 0.3), ("style", 0.2)):
        rate = nulls[name].float().mean().item()
        assert abs(rate - p) < 3 * math.sqrt(p * (1 - p) / n), (name, rate)
    joint, p = (nulls["structure"] & nulls["style"]).float().mean().item(), 0.3 * 0.2
    assert abs(joint - p) < 3 * math.sqrt(p * (1 - p) / n), joint
    off = model.null_mask(n, torch.device("cpu"), cfg_dropout_prob=0.0)
    assert not any(bool(m.any()) for m in off.values())


def test_training_dropout_applies_in_forward_only_when_cfg_dropout_prob_positive():
    model = build(cond_dropout={"structure": 1.0, "style": 1.0})
    inputs = make_inputs()
    cond = run(model, inputs, null_conditions=all_null(B, False, False))
    null = run(model, inputs, null_conditions=all_null(B, True, True))
    assert not torch.allclose(cond, null, atol=1e-4)
    torch.testing.assert_close(run(model, inputs, cfg_dropout_prob=0.0), cond, atol=1e-6, rtol=0)
    torch.testing.assert_close(run(model, inputs, cfg_dropout_prob=0.1), null, atol=1e-6, rtol=0)
    # explicit null_conditions win over random draws
    torch.testing.assert_close(run(model, inputs, cfg_dropout_prob=0.1, null_conditions=all_null(B, False, False)),
                               cond, atol=1e-6, rtol=0)


def test_explicit_null_conditions_are_honoured_per_item():
    model = build()
    inputs = make_inputs()
    mixed = run(model, inputs, null_conditions={"structure": torch.tensor([True, False]),
                                                "style": torch.tensor([False, True])})
    no_structure = run(model, inputs, null_conditions=all_null(B, True, False))
    no_style = run(model, inputs, null_conditions=all_null(B, False, True))
    torch.testing.assert_close(mixed[0], no_structure[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[1], no_style[1], atol=1e-5, rtol=0)
    with pytest.raises(KeyError):
        run(model, inputs, null_conditions={"text": torch.ones(B, dtype=torch.bool)})


@pytest.mark.parametrize("mode,nulls", [("hierarchical", ["event", "local", "global"]), ("global", ["pooled"]),
                                        ("flat", ["event"])])
def test_learned_nulls_are_parameters_and_receive_gradients(mode, nulls):
    model = liven(build(symbol_mode=mode))  # zero-init AdaLN would block the style path at step 0
    names = dict(model.named_parameters())
    assert sorted(model.null_symbols) == sorted(nulls)
    assert "null_style" in names and all(f"null_symbols.{k}" in names for k in nulls)
    out = run(model, make_inputs(), null_conditions=all_null(B, True, True))
    out.square().mean().backward()
    for k in nulls:
        assert float(model.null_symbols[k].grad.abs().sum()) > 0, k
    assert float(model.null_style.grad.abs().sum()) > 0


# -- guidance ------------------------------------------------------------------------------------------
class StubBackbone(nn.Module):
    """v = 1 + 2·[structure kept] + 5·[style kept]; counts its forward calls."""

    condition_names = ("structure", "style")

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, t, null_conditions=None, **kwargs):
        self.calls += 1
        keep_h = (~null_conditions["structure"]).to(x.dtype)[:, None, None]
        keep_s = (~null_conditions["style"]).to(x.dtype)[:, None, None]
        return torch.ones_like(x) + 2 * keep_h + 5 * keep_s


def test_decoupled_guidance_against_stub_one_forward_per_step():
    stub = StubBackbone()
    x, t = torch.zeros(3, 2, 4), torch.full((3,), 0.5)
    v = guided_velocity(stub, x, t, {}, decoupled_guidance(0.0, 0.0), stub.condition_names)
    torch.testing.assert_close(v, torch.ones_like(x))  # w_H = w_S = 0: the unconditional branch
    v = guided_velocity(stub, x, t, {}, decoupled_guidance(1.5, 0.25), stub.condition_names)
    torch.testing.assert_close(v, torch.full_like(x, 1 + 2 * 1.5 + 5 * 0.25))
    stub.calls = 0
    velocity = lambda x, t: guided_velocity(stub, x, t, {}, decoupled_guidance(2.0, 1.0), stub.condition_names)
    sample_euler(velocity, torch.randn(3, 2, 4), torch.linspace(1, 0, 6))
    assert stub.calls == 5


def test_guidance_on_model_is_one_batched_forward():
    model = build()
    inputs = make_inputs()
    x, t = inputs.pop("x"), inputs.pop("t")
    calls = []
    model.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    v0 = guided_velocity(model, x, t, inputs, decoupled_guidance(0.0, 0.0), model.condition_names)
    assert calls == [3 * B]  # three branches stacked in one forward
    unconditional = model(x, t, **inputs, null_conditions=all_null(B, True, True))
    torch.testing.assert_close(v0, unconditional, atol=1e-5, rtol=0)
    w_h, w_s = 1.5, 0.75
    v = guided_velocity(model, x, t, inputs, decoupled_guidance(w_h, w_s), model.condition_names)
    v_h = model(x, t, **inputs, null_conditions=all_null(B, False, True))
    v_s = model(x, t, **inputs, null_conditions=all_null(B, True, False))
    torch.testing.assert_close(v, unconditional + w_h * (v_h - unconditional) + w_s * (v_s - unconditional),
                               atol=1e-4, rtol=0)


def test_cfg_scale_fallback_is_plain_cfg_in_one_forward():
    model = build()
    inputs = make_inputs()
    x, t = inputs.pop("x"), inputs.pop("t")
    calls = []
    model.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    v = model(x, t, **inputs, cfg_scale=3.0, batch_cfg=True, rescale_cfg=False)  # SAT's kwargs are swallowed
    assert calls == [2 * B]
    cond = model(x, t, **inputs, null_conditions=all_null(B, False, False))
    null = model(x, t, **inputs, null_conditions=all_null(B, True, True))
    torch.testing.assert_close(v, -2.0 * null + 3.0 * cond, atol=1e-4, rtol=0)


# -- auxiliary losses in the backbone -----------------------------------------------------------------
def test_backbone_aux_losses_from_real_encoder_outputs():
    model = build(cond_dropout={"structure": 1.0, "style": 0.0})
    inputs = make_inputs(labels=True)
    run(model, inputs, cfg_dropout_prob=0.1)  # every structure dropped; aux still from the real features
    levels, labels = model.encode_symbols(inputs["input_concat_cond"])
    expected = model.encoder.aux_losses(levels, labels)
    assert set(model.aux_losses) == {"chroma", "beat", "tempo", "key"}
    for k in expected:
        torch.testing.assert_close(model.aux_losses[k], expected[k], atol=1e-6, rtol=0)
    sum(model.aux_losses.values()).backward()
    assert float(model.encoder.input_proj.weight.grad.abs().sum()) > 0
    run(model, make_inputs(labels=False))
    assert model.aux_losses == {}  # reset every forward; no labels (inference) → no aux loss


# -- baselines and ablations as configs ------------------------------------------------------------------
def count(model: nn.Module, cls: type, predicate=lambda m: True) -> int:
    return sum(1 for m in model.modules() if isinstance(m, cls) and predicate(m))


CONFIGS = {
    "hs_mad": ({}, 5, 2),
    "baseline_global": ({"symbol_mode": "global"}, 0, 0),
    "baseline_flat": ({"symbol_mode": "flat"}, 2, 0),
    "no_scm": ({"scm_levels": []}, 5, 0),
    "no_mrci_high": ({"tca_levels": ["middle", "bottleneck"]}, 3, 2),
    "no_mrci_middle": ({"tca_levels": ["high", "bottleneck"]}, 3, 2),
    "no_mrci_bottleneck": ({"tca_levels": ["high", "middle"]}, 4, 2),
    "no_aux": ({"encoder": {**ENC, "aux_heads": []}}, 5, 2),
    "windowed_tca": ({"tca_window": 4}, 5, 2),
}


@pytest.mark.parametrize("name", sorted(CONFIGS) + ["binary_srm"])
def test_config_builds_and_trains(name):
    overrides, tca_blocks, scm_blocks = CONFIGS.get(name, CONFIGS["hs_mad"])
    model = build(**overrides).train()
    assert count(model, TransformerBlock, lambda m: m.tca is not None) == tca_blocks
    assert count(model, SkipModulation) == scm_blocks
    inputs = make_inputs(labels=True)
    if name == "binary_srm":  # the binary piano roll is just another S_sync
        structure = inputs["input_concat_cond"]
        structure[:, :384] = (structure[:, :384] > 0.5).float()
    out = run(model, inputs, cfg_dropout_prob=0.1)
    loss = out.square().mean() + 0.1 * sum(model.aux_losses.values())
    loss.backward()
    assert out.shape == (B, 8, N) and torch.isfinite(loss)
    assert float(model.input_proj.weight.grad.abs().sum()) > 0
    assert float(model.encoder.input_proj.weight.grad.abs().sum()) > 0
    expected_aux = {"baseline_flat": set(), "no_aux": set()}.get(name, {"chroma", "beat", "tempo", "key"})
    assert set(model.aux_losses) == expected_aux
    if name == "baseline_flat":
        assert model.encoder.num_levels == 1 and model.tca_levels == ["high"]


def test_bad_configs_raise_naming_the_key():
    with pytest.raises(ValueError, match="tca_levels"):
        build(symbol_mode="global", tca_levels=["bottleneck"])
    with pytest.raises(ValueError, match="tca_levels"):
        build(symbol_mode="flat", tca_levels=["middle"])
    with pytest.raises(ValueError, match="scm_levels"):
        build(scm_levels=["bottleneck"])
    with pytest.raises(ValueError, match="num_transformer_blocks"):
        build(num_transformer_blocks=[0, 1, 1])
    with pytest.raises(KeyError, match="cond_dropout"):
        build(cond_dropout={"text": 0.1})
    with pytest.raises(TypeError, match=r"model\.diffusion\.config\.encoder.*widht"):
        build(encoder={**ENC, "widht": 3})
    with pytest.raises(ValueError, match="num_levels"):
        build(symbol_mode="flat", encoder={**ENC, "num_levels": 3})


def test_builds_from_json_config():
    import saga_hsmad
    config = {"model_type": "diffusion_cond", "sample_rate": 44100,
              "model": {"io_channels": 8, "diffusion": {"type": "mrci_unet", "diffusion_objective": "rectified_flow",
                                                        "config": TINY}}}
    wrapper = saga_hsmad.create_model_from_config(config)
    assert isinstance(wrapper.model, MRCIUNet) and wrapper.min_input_length == 16
    out = run(wrapper.model.eval(), make_inputs())
    assert out.shape == (B, 8, N)


# -- structure packing ---------------------------------------------------------------------------------
def test_packing_layout_and_round_trip():
    g = torch.Generator().manual_seed(0)
    srm, mask = torch.rand(2, 384, 32, generator=g), torch.arange(32)[None].repeat(2, 1) < torch.tensor([[32], [20]])
    labels = labels_for(2, 8, g)
    labels["key"][1, 0], labels["key_mask"][1, 0] = -100, False  # derive_labels' ignore index
    packed = pack_structure(srm, mask, labels)
    assert packed.shape == (2, 385 + LABEL_CHANNELS, 32) and LABEL_CHANNELS == 21
    assert torch.equal(packed[:, :384], srm) and torch.equal(packed[:, 384], mask.float())
    assert label_slice("chroma") == slice(385, 397) and label_slice("key_mask") == slice(405, 406)
    # chroma frame j of T_M sits on T_H frames [4j, 4j + 4); tempo frame j of T_L on [16j, 16j + 16)
    assert torch.equal(packed[1, 385:397, 4 * 5 + 3], labels["chroma"][1, 5])
    assert torch.equal(packed[0, label_slice("tempo")][0, 16:32], labels["tempo"][0, 1].expand(16))
    srm2, mask2, labels2 = unpack_structure(packed, factors=(4, 4))
    assert torch.equal(srm2, srm) and torch.equal(mask2, mask)
    for k, v in labels.items():
        assert torch.equal(labels2[k], v), k
    assert labels2["key"].dtype == torch.long and labels2["chroma_mask"].dtype == torch.bool
    assert unpack_structure(pack_structure(srm, mask))[2] is None


def test_packing_unbatched_missing_and_per_item_labels_and_errors():
    srm = torch.rand(384, 32)
    packed = pack_structure(srm, None, {"tempo": torch.tensor(0.5), "tempo_mask": torch.tensor(True)})
    assert packed.shape == (406, 32)
    _, mask, labels = unpack_structure(packed[None], factors=(4, 4))
    assert bool(mask.all()) and torch.equal(labels["tempo"], torch.full((1, 2), 0.5))
    assert bool(labels["tempo_mask"].all()) and not bool(labels["chroma_mask"].any())
    assert not bool(labels["key_mask"].any()) and not bool(labels["downbeat_mask"].any())
    with pytest.raises(ValueError, match="multiple"):
        pack_structure(srm[None], None, {"chroma": torch.rand(1, 7, 12)})
    with pytest.raises(KeyError, match="unknown label"):
        pack_structure(srm[None], None, {"bpm": torch.rand(1)})
    with pytest.raises(ValueError, match="channels"):
        unpack_structure(torch.rand(1, 390, 32))


def test_packs_derive_labels_output_and_feeds_the_aux_heads():
    """The symbolic helper's real outputs (render_srm, derive_labels) go through packing into the model."""
    from saga_hsmad.symbolic.labels import derive_labels
    from saga_hsmad.symbolic.midi import Score
    from saga_hsmad.symbolic.srm import render_srm

    frame_rate, n = 44100 / 512, 64
    duration = (n + 0.5) / frame_rate  # floor(duration · frame_rate) = 64 frames
    score = Score.from_notes([(60, 0.05, 0.4, 90), (64, 0.2, 0.6, 70), (67, 0.3, 0.7, 50)], end_time=duration)
    score = dataclasses.replace(score, beats=np.arange(0, duration, 0.25), downbeats=np.arange(0, duration, 1.0),
                                has_tempo_info=True, has_time_signature=True)
    srm, labels = render_srm(score, duration, frame_rate), derive_labels(score, duration, frame_rate, (4, 4))
    packed = torch.stack([pack_structure(srm, None, labels)] * 2)  # item by item, then batched
    _, _, back = unpack_structure(packed, factors=(4, 4))
    for k, v in labels.items():
        assert torch.equal(back[k][0], v), k
    model = build()
    inputs = make_inputs()
    inputs["input_concat_cond"] = packed
    run(model, inputs)
    assert set(model.aux_losses) == {"chroma", "beat", "tempo", "key"}
    assert all(bool(torch.isfinite(v)) for v in model.aux_losses.values())
