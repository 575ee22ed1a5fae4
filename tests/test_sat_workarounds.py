"""Each stable-audio-tools 0.0.19 defect the project works around, shown to bite without the workaround."""
from __future__ import annotations

import pytest
import torch
from conftest import REPO, StepHarness, load_json

import saga_hsmad
from saga_hsmad.training.diffusion_cond import DiffusionCondTrainingWrapper


def tiny_config(**training):
    config = load_json(REPO / "model_configs/generate/tiny.json")
    config["training"].update(training)
    return config


def batch(config, n=2, bare_masks=True):
    samples = 2048
    reals = torch.randn(n, 2, samples)
    metadata = []
    for i in range(n):
        mask = torch.ones(samples, dtype=torch.bool)
        mask[samples // 2:] = i == 0
        metadata.append({"prompt": f"clip {i}", "seconds_total": 1.0,
                         "padding_mask": mask if bare_masks else [mask]})
    return reals, metadata


def harnessed(base, config):
    """``base`` (upstream's wrapper or ours) around a fresh model of ``config``, without EMA."""
    cls = type(f"Harnessed{base.__name__}", (StepHarness, base), {})
    model = saga_hsmad.create_model_from_config(config)
    return cls(model, optimizer_configs=config["training"]["optimizer_configs"], use_ema=False,
               mask_padding=True, timestep_sampler="logit_normal")


def stock_wrapper(config):
    from stable_audio_tools.training.diffusion import DiffusionCondTrainingWrapper as Stock

    return harnessed(Stock, config)


def our_wrapper(config):
    return harnessed(DiffusionCondTrainingWrapper, config)


def test_bare_tensor_padding_mask_crashes_upstream_and_trains_here():
    config = tiny_config()
    with pytest.raises(Exception):
        stock_wrapper(config).training_step(batch(config, bare_masks=True), 0)
    loss = our_wrapper(config).training_step(batch(config, bare_masks=True), 0)
    assert torch.isfinite(loss)
    loss = our_wrapper(config).training_step(batch(config, bare_masks=False), 0)
    assert torch.isfinite(loss)


def test_padding_mask_reaches_backbone_at_latent_length():
    config = tiny_config()
    wrapper = our_wrapper(config)
    seen = {}
    backbone = wrapper.diffusion.model
    original = backbone.forward

    def spy(x, t, **kwargs):
        seen["mask"] = kwargs.get("mask")
        seen["x"] = x
        return original(x, t, **kwargs)

    backbone.forward = spy
    wrapper.training_step(batch(config), 0)
    assert seen["mask"].shape == (2, seen["x"].shape[-1])
    assert seen["mask"][0].all() and not seen["mask"][1, -1]


def test_list_metadata_is_truncated_upstream_and_whole_here():
    from stable_audio_tools.models.conditioners import Conditioner
    from stable_audio_tools.models.conditioners import MultiConditioner as Stock

    from saga_hsmad.conditioners.multi import MultiConditioner

    class Recorder(Conditioner):
        def __init__(self):
            super().__init__(1, 1)
            self.seen = None

        def forward(self, inputs, device):
            self.seen = inputs
            return [torch.zeros(len(inputs), 1, 1), torch.ones(len(inputs), 1)]

    metadata = [{"notes": [60, 64, 67]}, {"notes": [62]}]
    stock_rec, our_rec = Recorder(), Recorder()
    Stock({"notes": stock_rec})(metadata, "cpu")
    MultiConditioner({"notes": our_rec})(metadata, "cpu")
    assert stock_rec.seen == [60, 62]  # the 0.0.19 defect: a 3-element list cut to its first element
    assert our_rec.seen == [[60, 64, 67], 62]  # whole lists; one-element lists unwrapped as upstream intends


def test_inverse_lr_raises_upstream_and_matches_closed_form_here():
    from stable_audio_tools.training.utils import InverseLR as Stock

    from saga_hsmad.training.schedulers import InverseLR

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(TypeError):
        Stock(opt, inv_gamma=1e6, power=0.5, warmup=0.99)
    sched = InverseLR(opt, inv_gamma=100.0, power=0.5, warmup=0.9)
    lrs = []
    for step in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [1e-3 * (1 - 0.9 ** (s + 1)) * (1 + s / 100.0) ** -0.5 for s in range(5)]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_distribution_shift_sees_latent_length():
    config = tiny_config()
    config["model"]["diffusion"]["distribution_shift_options"] = {"min_length": 4, "max_length": 64}
    lengths = {}
    for name, make in (("stock", stock_wrapper), ("ours", our_wrapper)):
        wrapper = make(config)
        shift = wrapper.diffusion.dist_shift
        original = shift.time_shift

        def spy(t, length, _original=original, _name=name):
            lengths[_name] = length
            return _original(t, length)

        shift.time_shift = spy
        try:
            wrapper.training_step(batch(config, bare_masks=False), 0)
        except Exception:
            pass
    ratio = 64  # the tiny config's patch pretransform
    assert lengths["stock"] == 2048  # 0.0.19: the audio length
    assert lengths["ours"] == 2048 // ratio


def test_encoding_enters_both_autocast_and_grad_mode():
    config = tiny_config()
    wrapper = our_wrapper(config)
    wrapper.encode_autocast, wrapper.encode_autocast_dtype = True, torch.bfloat16
    seen = {}
    pretransform = wrapper.diffusion.pretransform
    original = pretransform.encode

    def spy(x):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["grad"] = torch.is_grad_enabled()
        return original(x)

    pretransform.encode = spy
    wrapper.encode_batch(*batch(config))
    # 0.0.19's `with autocast() and set_grad_enabled(False)` would give autocast False here.
    assert seen == {"autocast": True, "grad": False}


def test_demo_callback_writes_without_torchaudio(tmp_path, monkeypatch):
    import torchaudio

    from saga_hsmad.training.callbacks import DemoCallback

    def refuse(*args, **kwargs):
        raise RuntimeError("torchaudio.save needs torchcodec")

    monkeypatch.setattr(torchaudio, "save", refuse)
    config = tiny_config()
    wrapper = our_wrapper(config)
    callback = DemoCallback(tmp_path / "demos", demo_every=1, num_demos=2, demo_steps=2, demo_cfg_scales=[1.0, 3.0])
    paths = callback.write_demos(wrapper, batch(config, bare_masks=False), step=7)
    assert len(paths) == 4 and all(p.is_file() and p.stat().st_size > 44 for p in paths)


def test_generation_with_parameter_free_pretransform():
    """0.0.19's generate_diffusion_cond reads the decode dtype from next(pretransform.parameters())."""
    from stable_audio_tools.inference.generation import generate_diffusion_cond

    from saga_hsmad.inference.generate import conditioning_inputs, decode, generate_latents, linear_schedule

    config = tiny_config()
    config["model"]["pretransform"] = {"type": "patched", "config": {"channels": 2, "patch_size": 64}}
    model = saga_hsmad.create_model_from_config(config).eval()
    cond = [{"prompt": "x", "seconds_total": 1.0}]
    with pytest.raises(StopIteration):
        generate_diffusion_cond(model, steps=2, conditioning=cond, sample_size=2048, device="cpu", cfg_scale=1.0)
    inputs = conditioning_inputs(model, cond, torch.device("cpu"))
    audio = decode(model, generate_latents(model, inputs, (1, 128, 32), linear_schedule(2)))
    assert audio.shape == (1, 2, 2048) and torch.isfinite(audio).all()


def sr_wrapper_and_batch(**training):
    """The tiny SAGA-SR model in our wrapper and a batch whose LR audio equals its HR audio, so the target
    latent and the LR latent are encodings of the same signal."""
    config = load_json(REPO / "model_configs/saga_sr/tiny.json")
    model = saga_hsmad.create_model_from_config(config)
    cls = type("HarnessedSR", (StepHarness, DiffusionCondTrainingWrapper), {})
    wrapper = cls(model, optimizer_configs=config["training"]["optimizer_configs"], use_ema=False,
                  timestep_sampler="logit_normal", **training)
    samples = 4096
    reals = torch.randn(2, 2, samples, generator=torch.Generator().manual_seed(0)) * 0.3
    metadata = [{"prompt": "a clip", "lr_audio": reals[i].clone(), "rolloff_in": 0.5, "rolloff_target": 0.9,
                 "padding_mask": [torch.ones(samples, dtype=torch.bool)]} for i in range(2)]
    return wrapper, reals, metadata


def encodings_in_a_step(wrapper, reals, metadata, outer_autocast):
    """(target latents, LR latents) as a training step computes them, optionally inside a CPU bf16 autocast
    (what Lightning's ``bf16-mixed`` wraps a step in)."""
    seen = {}
    conditioner = wrapper.diffusion.conditioner
    encode_batch, condition = wrapper.encode_batch, conditioner.forward

    def spy_encode(*args):
        latents, md = encode_batch(*args)
        seen["target"] = latents
        return latents, md

    def spy_condition(*args):
        output = condition(*args)
        seen["lr"] = output["lr_audio"][0]
        return output

    wrapper.encode_batch, conditioner.forward = spy_encode, spy_condition
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=outer_autocast):
            wrapper.training_step((reals, metadata), 0)
    finally:
        del wrapper.encode_batch, conditioner.forward
    return seen["target"], seen["lr"]


def test_target_and_lr_latents_are_encoded_the_same_way_fp32_by_default():
    """Default: both latents in float32, also inside a mixed-precision step (0.0.19 and our earlier default
    left the LR latent to the outer autocast and would use fp16 for the target latent on CUDA)."""
    wrapper, reals, metadata = sr_wrapper_and_batch()
    assert wrapper.encode_autocast is False
    pretransform = wrapper.diffusion.pretransform
    with torch.no_grad():
        reference = pretransform.encode(reals).float()
        low_precision = pretransform.encode(reals.bfloat16()).float()
    assert not torch.equal(reference, low_precision)  # the precision is visible in this pretransform
    for outer in (False, True):
        target, lr = encodings_in_a_step(wrapper, reals, metadata, outer)
        assert target.dtype == lr.dtype == torch.float32
        assert torch.equal(target, reference) and torch.equal(lr, reference), outer
    # the option: both under autocast (bf16 on this CPU), still identical to each other
    wrapper.encode_autocast, wrapper.encode_autocast_dtype = True, torch.bfloat16
    target, lr = encodings_in_a_step(wrapper, reals, metadata, False)
    assert target.dtype == lr.dtype == torch.float32
    assert torch.equal(target, lr) and not torch.equal(target, reference)
    assert (target - reference).abs().max() < 0.05 * reference.abs().max()
