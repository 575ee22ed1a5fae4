"""SAO initialisation of dit_concat: a tiny stock stable-audio-tools "dit" model stands in for Stable Audio
Open (same key layout), is saved, and loaded into a dit_concat model with extra LR-latent input channels."""
from __future__ import annotations

import copy

import pytest
import torch

import saga_hsmad
import saga_hsmad.conditioners.rolloff  # noqa: F401  (registers "rolloff")
import saga_hsmad.models.dit_concat  # noqa: F401  (registers "dit_concat")
from saga_hsmad.models.sao_init import load_pretrained

IO, D = 4, 64  # latent channels, cond width


def tiny_vae() -> dict:
    def side(kind: str, latent: int) -> dict:
        io_key = "in_channels" if kind == "encoder" else "out_channels"
        return {"type": "oobleck", "config": {io_key: 2, "channels": 4, "c_mults": [1, 2], "strides": [2, 2],
                                              "latent_dim": latent, "use_snake": True}}
    return {"type": "autoencoder", "config": {
        "encoder": side("encoder", 2 * IO), "decoder": side("decoder", IO), "bottleneck": {"type": "vae"},
        "latent_dim": IO, "downsampling_ratio": 4, "io_channels": 2}}


def dit_config(patch_size: int) -> dict:
    return {"io_channels": IO, "embed_dim": 64, "depth": 2, "num_heads": 2, "cond_token_dim": D,
            "global_cond_dim": 2 * D, "project_cond_tokens": False, "patch_size": patch_size}


def stock_config(patch_size: int) -> dict:
    """The layout of Stable Audio Open 1.0's model_config.json, shrunk (no T5: nothing may download)."""
    number = {"min_val": 0, "max_val": 512}
    return {"model_type": "diffusion_cond", "sample_size": 1024, "sample_rate": 44100, "audio_channels": 2,
            "model": {"pretransform": tiny_vae(),
                      "conditioning": {"cond_dim": D, "configs": [
                          {"id": "seconds_start", "type": "number", "config": number},
                          {"id": "seconds_total", "type": "number", "config": number}]},
                      "diffusion": {"type": "dit", "cross_attention_cond_ids": ["seconds_start", "seconds_total"],
                                    "global_cond_ids": ["seconds_start", "seconds_total"],
                                    "config": dit_config(patch_size)},
                      "io_channels": IO}}


def concat_config(patch_size: int) -> dict:
    return {"model_type": "diffusion_cond", "sample_size": 1024, "sample_rate": 44100, "audio_channels": 2,
            "model": {"pretransform": tiny_vae(),
                      "conditioning": {"cond_dim": D, "configs": [
                          {"id": "rolloff_in", "type": "rolloff", "config": {}},
                          {"id": "rolloff_target", "type": "rolloff", "config": {}},
                          {"id": "lr_audio", "type": "pretransform",
                           "config": {"use_model_pretransform": True, "sample_rate": 44100, "output_dim": IO}}]},
                      "diffusion": {"type": "dit_concat", "diffusion_objective": "rectified_flow",
                                    "cross_attention_cond_ids": ["rolloff_in", "rolloff_target"],
                                    "global_cond_ids": ["rolloff_in", "rolloff_target"],
                                    "input_concat_ids": ["lr_audio"],
                                    "config": {**dit_config(patch_size), "input_concat_dim": IO,
                                               "use_checkpointing": False}},
                      "io_channels": IO}}


def randomised_stock(patch_size: int, seed: int = 0):
    """A stock model with every weight random (SAT zero-initialises several, which would hide errors)."""
    torch.manual_seed(seed)
    model = saga_hsmad.create_model_from_config(stock_config(patch_size))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval()


@pytest.mark.parametrize("patch_size,fmt", [(1, "ckpt"), (2, "safetensors")])
def test_sao_checkpoint_loads_widens_and_reproduces_the_stock_model(tmp_path, patch_size, fmt):
    stock = randomised_stock(patch_size)
    state = {k: v.clone().contiguous() for k, v in stock.state_dict().items()}
    path = tmp_path / f"sao.{fmt}"
    if fmt == "ckpt":
        torch.save({"state_dict": state}, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))

    torch.manual_seed(1)
    model = saga_hsmad.create_model_from_config(concat_config(patch_size)).eval()
    fresh = copy.deepcopy(model.state_dict())
    report = load_pretrained(model, path)
    own = model.state_dict()

    pre, proj = "model.model.preprocess_conv.weight", "model.model.transformer.project_in.weight"
    assert sorted(report.widened) == sorted([pre, proj])
    assert not report.mismatched
    # every matching weight equal to the checkpoint's, including the VAE
    for key in report.loaded:
        assert torch.equal(own[key], state[key]), key
    assert sum(k.startswith("pretransform.") for k in report.loaded) == \
        sum(k.startswith("pretransform.") for k in state) > 0
    expected_loaded = {k for k in state if k in own} - {pre, proj}
    assert set(report.loaded) == expected_loaded
    # roll-off embedders are new (as initialised), SAO's seconds embedders unused
    assert report.new and all(k.startswith("conditioner.conditioners.rolloff_") for k in report.new)
    for key in report.new:
        assert torch.equal(own[key], fresh[key])
    assert report.unused and all(k.startswith("conditioner.conditioners.seconds_") for k in report.unused)

    # widened weights: old block in place, new input channels exactly zero
    w = own[pre]
    assert w.shape == (2 * IO, 2 * IO, 1)
    assert torch.equal(w[:IO, :IO], state[pre]) and not w[IO:].any() and not w[:, IO:].any()
    w = own[proj]
    assert w.shape == (64, 2 * IO * patch_size)
    assert torch.equal(w[:, :IO * patch_size], state[proj]) and not w[:, IO * patch_size:].any()

    # a zero LR latent (exactly zero channels, not the -5 null) reproduces the stock model exactly;
    # a non-zero LR latent too, since its weights are zero at initialisation
    g = torch.Generator().manual_seed(3)
    b, n = 3, 8
    x, t = torch.randn(b, IO, n, generator=g), torch.rand(b, generator=g)
    cross, glob = torch.randn(b, 2, D, generator=g), torch.randn(b, 2 * D, generator=g)
    with torch.no_grad():
        want = stock.model(x, t, cross_attn_cond=cross, global_cond=glob)
        got = model.model(x, t, cross_attn_cond=cross, global_cond=glob, input_concat_cond=torch.zeros(b, IO, n))
        got_lr = model.model(x, t, cross_attn_cond=cross, global_cond=glob,
                             input_concat_cond=torch.randn(b, IO, n, generator=g))
        nulled = model.model(x, t, cross_attn_cond=cross, global_cond=glob, input_concat_cond=torch.zeros(b, IO, n),
                             null_conditions={"lr_latent": torch.ones(b, dtype=torch.bool)})
    assert want.abs().max() > 0.1  # the comparison is not between two zero outputs
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(got_lr, want, rtol=0, atol=1e-6)
    # the null value -5 does reach the concat channels (zero weights hide it only in project_in's columns,
    # so the output still equals the stock one); the null path is exercised without error
    torch.testing.assert_close(nulled, want, rtol=0, atol=1e-6)

    # the LR-latent columns learn: a loss through a non-zero LR latent gives them a gradient
    model.train()
    out = model.model(x, t, cross_attn_cond=cross, global_cond=glob,
                      input_concat_cond=torch.randn(b, IO, n, generator=g))
    out.square().mean().backward()
    grad = model.model.model.transformer.project_in.weight.grad
    assert grad[:, IO * patch_size:].abs().sum() > 0


def test_missing_file_and_wrong_model_are_clear_errors(tmp_path):
    model = saga_hsmad.create_model_from_config(concat_config(1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(model, tmp_path / "nope.ckpt")
    stock = randomised_stock(1)
    with pytest.raises(TypeError, match="dit_concat"):
        load_pretrained(stock, tmp_path / "nope.ckpt")


def test_checkpoint_with_other_widths_is_reported_not_silently_skipped(tmp_path):
    stock = randomised_stock(1)
    state = dict(stock.state_dict())
    state["model.model.transformer.project_in.weight"] = torch.randn(64, 3 * IO)  # neither io nor io+concat
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": state}, path)
    model = saga_hsmad.create_model_from_config(concat_config(1))
    with pytest.raises(ValueError, match="project_in"):
        load_pretrained(model, path)


def test_a_dit_of_other_widths_takes_only_the_matching_tensors(tmp_path):
    """small.json against SAO: the VAE loads, the DiT (other widths) keeps its initialisation, no error."""
    stock = randomised_stock(1)
    path = tmp_path / "sao.ckpt"
    torch.save({"state_dict": dict(stock.state_dict())}, path)
    config = concat_config(1)
    config["model"]["diffusion"]["config"].update(embed_dim=128, num_heads=4)
    model = saga_hsmad.create_model_from_config(config)
    report = load_pretrained(model, path)
    pre = [k for k in report.loaded if k.startswith("pretransform.")]
    assert pre and all(torch.equal(model.state_dict()[k], stock.state_dict()[k]) for k in pre)
    # embed-wide tensors stay new; tensors whose shape does not depend on embed_dim (cond_token_dim-wide
    # cross-attention keys/values, time features) match and load, as every matching weight does
    assert "model.model.transformer.layers.0.self_attn.to_qkv.weight" in report.mismatched
    assert "model.model.transformer.layers.0.cross_attn.to_kv.weight" in report.loaded
    assert "model.model.transformer.project_in.weight" in report.mismatched
