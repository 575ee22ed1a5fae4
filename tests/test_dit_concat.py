"""dit_concat: condition dropout (rates, independence, null values, the prepended roll-off token never
dropped) checked on the exact tensors reaching SAT's DiffusionTransformer; plain-CFG fallback; SAT's own
CFG/dropout bypassed; checkpointing switch; and training/sampling condition parity (seed-000 failure)."""
from __future__ import annotations

import pytest
import torch
from conftest import StepHarness

import saga_hsmad.conditioners.rolloff  # noqa: F401  (registers "rolloff")
from saga_hsmad.models.dit_concat import DiTConcat

IO, K, D, G = 8, 8, 64, 128


def make(**kwargs) -> DiTConcat:
    torch.manual_seed(0)
    cfg = dict(io_channels=IO, input_concat_dim=K, embed_dim=64, depth=1, num_heads=2, cond_token_dim=D,
               global_cond_dim=G, use_checkpointing=False)
    cfg.update(kwargs)
    return DiTConcat(**cfg)


def capture_inner(model: DiTConcat) -> list[dict]:
    """Record the keyword arguments of every call of the inner SAT DiffusionTransformer."""
    calls: list[dict] = []

    def hook(module, args, kwargs):
        calls.append({"x": args[0], "t": args[1], **kwargs})

    model.model.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


def inputs(b: int, n: int = 4, m: int = 3, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(b, IO, n, generator=g), t=torch.rand(b, generator=g),
                cross_attn_cond=torch.randn(b, m, D, generator=g) + 0.1,
                cross_attn_mask=torch.ones(b, m, dtype=torch.bool),
                global_cond=torch.randn(b, G, generator=g) + 0.1,
                input_concat_cond=torch.randn(b, K, 4 if n == 4 else n, generator=g) + 0.1)


def classify(call: dict, given: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: was the LR latent nulled (all -5), was the cross-attention sequence nulled (all 0)?
    Every sample must be exactly either untouched or nulled."""
    lr, ca = call["input_concat_cond"], call["cross_attn_cond"]
    lr_null = (lr == -5.0).flatten(1).all(1)
    lr_same = (lr == given["input_concat_cond"]).flatten(1).all(1)
    ca_null = (ca == 0.0).flatten(1).all(1)
    ca_same = (ca == given["cross_attn_cond"]).flatten(1).all(1)
    assert bool((lr_null ^ lr_same).all()), "LR latent rows must be either untouched or exactly -5"
    assert bool((ca_null ^ ca_same).all()), "cross-attention rows must be either untouched or exactly 0"
    return lr_null, ca_null


def test_dropout_rates_independence_and_global_token_never_dropped():
    p_lr, p_text = 0.1, 0.3
    model = make(cond_dropout={"lr_latent": p_lr, "text": p_text})
    calls = capture_inner(model)
    b = 4000
    given = inputs(b, n=2)
    torch.manual_seed(123)
    with torch.no_grad():
        model(**given, cfg_dropout_prob=0.1)  # training step: cfg_dropout_prob > 0 switches dropout on
    call = calls[-1]
    lr_null, ca_null = classify(call, given)
    sd = lambda p: 4 * (p * (1 - p) / b) ** 0.5  # noqa: E731  (4 standard deviations)
    assert abs(lr_null.float().mean().item() - p_lr) < sd(p_lr)
    assert abs(ca_null.float().mean().item() - p_text) < sd(p_text)
    both = (lr_null & ca_null).float().mean().item()
    assert abs(both - p_lr * p_text) < sd(p_lr * p_text)  # independent draws
    # the global roll-off conditioning (→ prepended token) reaches the DiT untouched in every sample
    assert torch.equal(call["global_embed"], given["global_cond"])
    # the cross-attention mask is passed on unchanged (SAT's DiT ignores it anyway)
    assert torch.equal(call["cross_attn_cond_mask"], given["cross_attn_mask"])
    # SAT's own CFG and dropout never run
    assert call["cfg_scale"] == 1.0 and call["cfg_dropout_prob"] == 0.0


def test_no_dropout_in_validation_or_sampling():
    model = make(cond_dropout={"lr_latent": 0.9, "text": 0.9})
    calls = capture_inner(model)
    given = inputs(64)
    with torch.no_grad():
        model(**given)  # cfg_dropout_prob = 0: validation and sampling
    lr_null, ca_null = classify(calls[-1], given)
    assert not lr_null.any() and not ca_null.any()


def test_explicit_null_conditions_and_configured_null_values():
    model = make(lr_latent_null_value=-3.0, text_null_value=0.5)
    calls = capture_inner(model)
    given = inputs(4)
    nulls = {"lr_latent": torch.tensor([True, False, True, False]), "text": torch.tensor([True, True, False, False])}
    with torch.no_grad():
        model(**given, null_conditions=nulls, cfg_dropout_prob=0.1)  # explicit masks win over random draws
    call = calls[-1]
    for i in range(4):
        lr, ca = call["input_concat_cond"][i], call["cross_attn_cond"][i]
        assert torch.equal(lr, torch.full_like(lr, -3.0) if nulls["lr_latent"][i] else given["input_concat_cond"][i])
        assert torch.equal(ca, torch.full_like(ca, 0.5) if nulls["text"][i] else given["cross_attn_cond"][i])
    assert torch.equal(call["global_embed"], given["global_cond"])


def test_paper_defaults_and_config_errors():
    model = make()
    assert model.cond_dropout == {"lr_latent": 0.1, "text": 0.1}
    assert model.lr_latent_null_value == -5.0 and model.text_null_value == 0.0
    assert model.condition_names == ("lr_latent", "text")
    with pytest.raises(KeyError, match="cond_dropout"):
        make(cond_dropout={"rolloff": 0.1})
    with pytest.raises(ValueError, match="input_concat_dim"):
        make(input_concat_dim=0)
    with pytest.raises(ValueError, match="rotary"):
        make(embed_dim=32, num_heads=2)
    with pytest.raises(ValueError, match="cond_token_dim"):
        make(cond_token_dim=48)


def test_zeroed_text_sequence_contributes_nothing():
    """The text null (all zeros) equals having no cross-attention at all: SAT's cond projection and
    attention have no bias, so zero tokens give zero keys and values."""
    model = make()
    with torch.no_grad():
        for p in model.parameters():  # SAT zero-initialises the attention outputs; make them matter
            p.add_(torch.randn_like(p) * 0.1)
    given = inputs(3)
    with torch.no_grad():
        nulled = model(**given, null_conditions={"text": torch.ones(3, dtype=torch.bool)})
        absent = model(**{**given, "cross_attn_cond": None, "cross_attn_mask": None})
        kept = model(**given)
    torch.testing.assert_close(nulled, absent, rtol=0, atol=1e-6)
    assert (kept - absent).abs().max() > 1e-3


def test_plain_cfg_fallback_is_one_batched_forward_of_the_right_combination():
    model = make()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    calls = capture_inner(model)
    given = inputs(3)
    s = 2.5
    with torch.no_grad():
        guided = model(**given, cfg_scale=s, batch_cfg=True, rescale_cfg=False, scale_phi=0.0)  # SAT's kwargs
        assert len(calls) == 1 and calls[0]["x"].shape[0] == 6  # both branches in one forward
        cond = model(**given)
        null = model(**given, null_conditions={"lr_latent": torch.ones(3, dtype=torch.bool),
                                               "text": torch.ones(3, dtype=torch.bool)})
    torch.testing.assert_close(guided, (1 - s) * null + s * cond, rtol=1e-5, atol=1e-5)


def test_unknown_kwargs_are_swallowed_and_shapes_checked():
    model = make()
    given = inputs(2)
    with torch.no_grad():
        out = model(**given, mask=torch.ones(2, 4, dtype=torch.bool), negative_cross_attn_cond=None,
                    cfg_interval=(0, 1), batch_cfg=True)
    assert out.shape == given["x"].shape
    with pytest.raises(ValueError, match="input_concat_cond"):
        model(**{**given, "input_concat_cond": None})
    with pytest.raises(AssertionError, match="input_concat_cond must be"):
        model(**{**given, "input_concat_cond": torch.zeros(2, K, 5)})  # no silent interpolation


@pytest.mark.parametrize("flag", [True, False])
def test_checkpointing_switch_reaches_sat_transformer(flag):
    model = make(use_checkpointing=flag)
    seen = []
    model.model.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs.get("use_checkpointing")), with_kwargs=True)
    given = inputs(2)
    model(**given).sum().backward()
    with torch.no_grad():
        model(**given)
    assert seen == [flag, False]  # never checkpoints without gradients
    assert model.length_multiple == 1 and make(patch_size=2).length_multiple == 2


# -- training / sampling condition parity (seed 000: roll-off missing in training) ------------------------------
def test_training_and_sampling_feed_the_dit_the_same_conditions(tmp_path):
    """A batch from the super_resolution dataset goes (a) through the training wrapper's step and (b) through
    the sampler's path (model.conditioner + get_conditioning_inputs, then guided Euler steps). The tensors
    reaching SAT's DiffusionTransformer have the same keys and shapes, the roll-off is in both (two
    cross-attention tokens after the text, and the global input of the prepended token), and for the same
    metadata the values agree wherever training did not drop a condition."""
    import json
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    import saga_hsmad
    import saga_hsmad.data.sr_dataset  # noqa: F401  (registers "super_resolution")
    from saga_hsmad.data.loader import create_dataloader_from_config
    from saga_hsmad.inference.generate import conditioning_inputs, generate_latents
    from saga_hsmad.inference.guidance import saga_sr_guidance

    config = json.loads((Path(__file__).resolve().parents[1] / "model_configs/saga_sr/tiny.json").read_text())
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config)
    rng = np.random.default_rng(0)
    for i in range(2):
        sf.write(tmp_path / f"clip{i}.wav", (rng.standard_normal((50000, 2)) * 0.1).astype(np.float32), 44100)
        (tmp_path / f"clip{i}.txt").write_text(f"noise clip {i}")
    loader = create_dataloader_from_config({"dataset_type": "super_resolution", "root": str(tmp_path)},
                                           batch_size=2, sample_size=config["sample_size"],
                                           sample_rate=config["sample_rate"], num_workers=0, shuffle=False)
    audio, metadata = next(iter(loader))
    for md in metadata:  # the dataset supplies every conditioner id
        assert {"prompt", "lr_audio", "rolloff_in", "rolloff_target"} <= set(md)

    calls = capture_inner(model.model)
    wrapper = saga_hsmad.create_training_wrapper_from_config(config, model)
    wrapper.__class__ = type("Harnessed", (StepHarness, type(wrapper)), {})  # logging without a Trainer run
    torch.manual_seed(1)
    with torch.no_grad():
        wrapper.training_step((audio, metadata), 0)
    train = calls[-1]

    model.eval()
    inputs = conditioning_inputs(model, metadata, torch.device("cpu"))  # the sampler's one path
    n = train["x"].shape[-1]
    generate_latents(model, inputs, (2, config["model"]["io_channels"], n), torch.tensor([1.0, 0.5, 0.0]),
                     guidance=saga_sr_guidance(1.4, 1.2))
    sample = calls[-1]

    keys = ("cross_attn_cond", "cross_attn_cond_mask", "input_concat_cond", "global_embed", "prepend_cond")
    for key in keys:
        a, b = train[key], sample[key]
        assert (a is None) == (b is None), key
        if a is not None:
            assert a.shape[1:] == b.shape[1:] and a.dtype == b.dtype, key
    assert train["global_embed"] is not None and train["cross_attn_cond"] is not None

    # the roll-off embeddings of the batch's own f_l and f_h, computed directly
    conds = model.conditioner.conditioners
    e_in, _ = conds["rolloff_in"]([md["rolloff_in"] for md in metadata], "cpu")
    e_tgt, _ = conds["rolloff_target"]([md["rolloff_target"] for md in metadata], "cpu")
    rolloff_global = torch.cat([e_in, e_tgt], dim=-1)[:, 0]
    assert train["cross_attn_cond"].shape[1] == 32 + 2  # 32 text tokens (tiny max_length) + f_l + f_h
    # sampling batches the three guidance branches: (u(∅,∅), u(z_l,∅), u(z_l,c)) x 2 items
    full = slice(4, 6)
    torch.testing.assert_close(train["global_embed"], rolloff_global)  # never dropped in training
    for branch in range(3):
        torch.testing.assert_close(sample["global_embed"][2 * branch:2 * branch + 2], rolloff_global)
    torch.testing.assert_close(sample["cross_attn_cond"][full, -2:], torch.cat([e_in, e_tgt], dim=1))
    assert not sample["cross_attn_cond"][0:4].any()  # text nulled in the first two branches (roll-off tokens too)
    assert bool((sample["input_concat_cond"][0:2] == -5.0).all())  # LR latent nulled in the first branch
    # each training row is either exactly the sampler's conditioned branch or exactly the null value
    classify(train, {"input_concat_cond": sample["input_concat_cond"][full],
                     "cross_attn_cond": sample["cross_attn_cond"][full]})


# -- shipped configs: the paper's numbers, and ablation twins that differ only in the ablated condition -------
def load(name: str) -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).resolve().parents[1] / "model_configs/saga_sr" / name).read_text())


def test_paper_config_numbers():
    cfg = load("paper.json")
    assert (cfg["sample_size"], cfg["sample_rate"], cfg["audio_channels"]) == (262144, 44100, 2)
    model = cfg["model"]
    assert model["pretransform"]["type"] == "autoencoder"
    assert model["pretransform"]["config"]["latent_dim"] == 64
    assert model["pretransform"]["config"]["downsampling_ratio"] == 2048
    cond = {c["id"]: c for c in model["conditioning"]["configs"]}
    assert model["conditioning"]["cond_dim"] == 768
    assert cond["prompt"]["type"] == "t5_local" and cond["prompt"]["config"]["max_length"] == 128
    assert cond["rolloff_in"]["type"] == cond["rolloff_target"]["type"] == "rolloff"
    assert cond["lr_audio"]["type"] == "pretransform" and cond["lr_audio"]["config"]["use_model_pretransform"]
    assert cond["lr_audio"]["config"]["output_dim"] == 64  # = encoded channels: SAT's proj_out is Identity
    diff = model["diffusion"]
    assert diff["type"] == "dit_concat" and diff["diffusion_objective"] == "rectified_flow"
    assert diff["cross_attention_cond_ids"] == ["prompt", "rolloff_in", "rolloff_target"]
    assert diff["global_cond_ids"] == ["rolloff_in", "rolloff_target"]
    assert diff["input_concat_ids"] == ["lr_audio"]
    c = diff["config"]
    assert (c["embed_dim"], c["depth"], c["num_heads"]) == (1536, 24, 24)
    assert (c["io_channels"], c["input_concat_dim"], c["cond_token_dim"], c["global_cond_dim"]) == (64, 64, 768, 1536)
    assert c["global_cond_type"] == "prepend" and c["project_cond_tokens"] is False
    assert c["cond_dropout"] == {"lr_latent": 0.1, "text": 0.1} and c["lr_latent_null_value"] == -5.0
    tr = cfg["training"]
    assert tr["use_ema"] is False and tr["timestep_sampler"] == "logit_normal" and tr["cfg_dropout_prob"] > 0
    opt = tr["optimizer_configs"]["diffusion"]
    assert opt["optimizer"] == {"type": "AdamW", "config": {"lr": 1e-5, "betas": [0.9, 0.999], "weight_decay": 1e-3}}
    assert opt["scheduler"] == {"type": "InverseLR", "config": {"inv_gamma": 1000000, "power": 0.5, "warmup": 0.99}}
    with torch.device("meta"):  # no memory: 1.06 B parameters (spec §4)
        backbone = DiTConcat(**c)
    assert 1.05e9 < sum(p.numel() for p in backbone.parameters()) < 1.07e9


def without(cfg: dict, ids: set[str], global_dim: int | None = None) -> dict:
    import copy

    cfg = copy.deepcopy(cfg)
    model = cfg["model"]
    model["conditioning"]["configs"] = [c for c in model["conditioning"]["configs"] if c["id"] not in ids]
    diff = model["diffusion"]
    for key in ("cross_attention_cond_ids", "global_cond_ids"):
        if key in diff:
            diff[key] = [i for i in diff[key] if i not in ids]
            if not diff[key]:
                del diff[key]
    if global_dim is not None:
        diff["config"]["global_cond_dim"] = global_dim
    return cfg


@pytest.mark.parametrize("base,prefix", [("paper.json", ""), ("tiny.json", "tiny_")])
def test_ablation_twins_differ_only_in_the_ablated_condition(base, prefix):
    full = load(base)
    no_rolloff = without(full, {"rolloff_in", "rolloff_target"}, global_dim=0)
    no_rolloff.pop("sampling")  # no target roll-off without roll-off conditioning
    assert load(f"{prefix}no_rolloff.json") == no_rolloff
    assert load(f"{prefix}no_text.json") == without(full, {"prompt"})


def test_small_config_is_the_paper_recipe_with_a_smaller_dit():
    paper, small = load("paper.json"), load("small.json")
    c = small["model"]["diffusion"]["config"]
    assert (c["embed_dim"], c["depth"], c["num_heads"]) == (768, 12, 12)
    for key in ("embed_dim", "depth", "num_heads"):
        small["model"]["diffusion"]["config"][key] = paper["model"]["diffusion"]["config"][key]
    small["training"]["learning_rate"] = paper["training"]["learning_rate"]
    small["training"]["optimizer_configs"]["diffusion"]["optimizer"]["config"]["lr"] = 1e-5
    assert small == paper


def test_lr_latent_comes_from_the_models_frozen_pretransform():
    """SAT's own "pretransform" conditioner with use_model_pretransform: it encodes with the model's
    pretransform object, its projection is the identity (output_dim = encoded channels), and it keeps the
    pretransform out of its own state dict (the model stores it once, under "pretransform.")."""
    import saga_hsmad

    config = load("tiny.json")
    model = saga_hsmad.create_model_from_config(config)
    cond = model.conditioner.conditioners["lr_audio"]
    assert cond.pretransform is model.pretransform
    assert isinstance(cond.proj_out, torch.nn.Identity)
    assert not [k for k in model.state_dict() if k.startswith("conditioner.conditioners.lr_audio")]
    assert not any(p.requires_grad for p in model.pretransform.parameters())
    lr = [torch.randn(2, config["sample_size"]) for _ in range(2)]
    latent, mask = cond(lr, "cpu")
    torch.testing.assert_close(latent, model.pretransform.encode(torch.stack(lr)))
    ratio = model.pretransform.downsampling_ratio
    assert latent.shape == (2, config["model"]["io_channels"], config["sample_size"] // ratio)
    # and the whole model routes it into the DiT's concat channels
    inputs = model.get_conditioning_inputs({"lr_audio": [latent, mask]} | {
        k: c([0.5, 0.5] if k.startswith("rolloff") else ["a", "b"], "cpu")
        for k, c in model.conditioner.conditioners.items() if k != "lr_audio"})
    assert torch.equal(inputs["input_concat_cond"], latent)
