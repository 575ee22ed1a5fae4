"""Shipped HS-MAD model configs: every file validates; the paper config carries the seed's numbers (spec §1,
§3–§5); each baseline / ablation twin differs from its base only in the ablated keys and builds the ablated
network."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO

import saga_hsmad
import saga_hsmad.pretransforms.dac_local  # noqa: F401  (registers "dac_local")
from saga_hsmad.config_check import validate_model_config, validate_pair
from saga_hsmad.models.mrci_unet import MRCIUNet

CONFIGS = REPO / "model_configs" / "hsmad"
ABLATIONS = {  # twin → the key paths (under model.) that differ from its base, and their values
    "baseline_global": {"diffusion.config.symbol_mode": "global"},
    "baseline_flat": {"diffusion.config.symbol_mode": "flat"},
    "no_scm": {"diffusion.config.scm_levels": []},
    "no_mrci_high": {"diffusion.config.tca_levels": ["middle", "bottleneck"], "diffusion.config.scm_levels": ["middle"]},
    "no_mrci_middle": {"diffusion.config.tca_levels": ["high", "bottleneck"], "diffusion.config.scm_levels": ["high"]},
    "no_mrci_bottleneck": {"diffusion.config.tca_levels": ["high", "middle"]},
    "no_aux": {"diffusion.config.encoder.aux_heads": []},
    "binary_srm": {"conditioning.configs[0].config.mode": "binary"},
}


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def test_the_expected_files_are_shipped_and_every_one_validates():
    names = sorted(p.stem for p in CONFIGS.glob("*.json"))
    expected = sorted(["paper", "small", "tiny"] + list(ABLATIONS) + [f"tiny_{a}" for a in ABLATIONS])
    assert names == expected
    for name in names:
        assert validate_model_config(load(name)) == [], name


def test_paper_config_carries_the_papers_numbers():
    cfg = load("paper")
    ratio, (r1, r2) = 512, (4, 4)
    assert (cfg["sample_rate"], cfg["audio_channels"]) == (44100, 1)
    assert cfg["sample_size"] % (ratio * r1 * r2) == 0 and abs(cfg["sample_size"] / 44100 - 30.0) < 0.1
    assert cfg["sample_size"] // ratio == 2592  # T_H; T_M = 648, T_L = 162 (86.13 latent frames/s)
    pt = cfg["model"]["pretransform"]
    assert pt["type"] == "dac_local" and pt["config"]["downsampling_ratio"] == ratio
    assert pt["config"]["latent_dim"] == 1024 == cfg["model"]["io_channels"]
    assert pt["config"]["model_path"].startswith("${")  # a placeholder: nothing downloads
    midi, style = cfg["model"]["conditioning"]["configs"]
    assert midi["type"] == "hierarchical_midi" and midi["config"]["factors"] == [r1, r2]
    assert midi["config"]["mode"] == "soft" and midi["config"]["sigma_on"] is None  # 1/(2 SR_latent)
    assert style["type"] == "t5_local" and style["config"]["pooled"] is True
    diffusion = cfg["model"]["diffusion"]
    assert (diffusion["type"], diffusion["diffusion_objective"]) == ("mrci_unet", "rectified_flow")
    assert diffusion["input_concat_ids"] == ["midi"] and diffusion["global_cond_ids"] == ["style"]
    d = diffusion["config"]
    assert d["widths"] == [512, 1024, 1536] and d["factors"] == [r1, r2] and d["symbol_mode"] == "hierarchical"
    assert d["style_dim"] == cfg["model"]["conditioning"]["cond_dim"]
    assert d["cond_dropout"] == {"structure": 0.1, "style": 0.1}
    enc = d["encoder"]
    assert (enc["widths"], enc["depths"], enc["heads"], enc["ffn_dim"], enc["conv_kernel"]) == \
        ([512, 1024, 1536], [6, 6, 6], 8, 2048, 31)
    tr = cfg["training"]
    assert tr["type"] == "diffusion_cond_aux" and tr["aux_loss_weights"] == dict.fromkeys(
        ("chroma", "beat", "tempo", "key"), 0.1)
    assert tr["use_ema"] is True and tr["cfg_dropout_prob"] > 0 and tr["timestep_sampler"] == "logit_normal"
    opt = tr["optimizer_configs"]["diffusion"]
    assert opt["optimizer"] == {"type": "AdamW", "config": {"lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0.01}}
    assert opt["scheduler"] == {"type": "WarmupCosine", "config": {"warmup_steps": 10000, "total_steps": 1000000}}


@pytest.mark.parametrize("name", ["paper", "small"])
def test_large_backbones_build_on_the_meta_device(name):
    cfg = load(name)
    with torch.device("meta"):
        backbone = MRCIUNet(**cfg["model"]["diffusion"]["config"])
    count = sum(p.numel() for p in backbone.parameters())
    if name == "paper":  # U-Net 208 M + encoder 323 M (3 x 6 Conformer blocks at 512/1024/1536)
        assert 5.2e8 < count < 5.4e8
        enc = backbone.encoder
        assert [len(stage) for stage in enc.stages] == [6, 6, 6] and enc.widths == [512, 1024, 1536]
        assert backbone.tca_levels == ["high", "middle", "bottleneck"] and backbone.scm_levels == ["high", "middle"]
    assert backbone.length_multiple == 16
    assert (cfg["sample_size"] // cfg["model"]["pretransform"]["config"]["downsampling_ratio"]) % 16 == 0


@pytest.mark.parametrize("twin", list(ABLATIONS))
@pytest.mark.parametrize("base", ["tiny", "paper"])
def test_twins_differ_only_in_the_ablated_keys(base, twin):
    a = flatten(load(base)["model"])
    b = flatten(load(twin if base == "paper" else f"tiny_{twin}")["model"])
    changed = {k: b.get(k) for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>")}
    assert changed == ABLATIONS[twin]
    full_a, full_b = load(base), load(twin if base == "paper" else f"tiny_{twin}")
    assert {k: v for k, v in full_a.items() if k != "model"} == {k: v for k, v in full_b.items() if k != "model"}


def injections(backbone: MRCIUNet) -> dict:
    """Where symbols enter the built network: TCA per stage, SCM per decoder level, the pooled vector."""
    def tca(stage):
        return any(block.tca is not None for block in stage.transformer_blocks)

    return {"tca_down_high": tca(backbone.down["high"]), "tca_down_middle": tca(backbone.down["middle"]),
            "tca_bottleneck": tca(backbone.bottleneck), "tca_up_middle": tca(backbone.up["middle"].stage),
            "tca_up_high": tca(backbone.up["high"].stage), "scm_high": backbone.up["high"].scm is not None,
            "scm_middle": backbone.up["middle"].scm is not None, "pooled": hasattr(backbone, "pooled_proj")}


def test_tiny_twins_build_the_ablated_networks():
    every = dict.fromkeys(("tca_down_high", "tca_down_middle", "tca_bottleneck", "tca_up_middle", "tca_up_high",
                           "scm_high", "scm_middle"), True)
    expected = {
        "tiny": {**every, "pooled": False},
        "tiny_baseline_global": {**dict.fromkeys(every, False), "pooled": True},
        "tiny_baseline_flat": {**dict.fromkeys(every, False), "tca_down_high": True, "tca_up_high": True,
                               "pooled": False},
        "tiny_no_scm": {**every, "scm_high": False, "scm_middle": False, "pooled": False},
        "tiny_no_mrci_high": {**every, "tca_down_high": False, "tca_up_high": False, "scm_high": False,
                              "pooled": False},
        "tiny_no_mrci_middle": {**every, "tca_down_middle": False, "tca_up_middle": False, "scm_middle": False,
                                "pooled": False},
        "tiny_no_mrci_bottleneck": {**every, "tca_bottleneck": False, "pooled": False},
        "tiny_no_aux": {**every, "pooled": False},
        "tiny_binary_srm": {**every, "pooled": False},
    }
    for name, want in expected.items():
        model = saga_hsmad.create_model_from_config(load(name))
        assert injections(model.model) == want, name
        heads = set(model.model.encoder.aux_heads)
        assert heads == (set() if name in ("tiny_no_aux", "tiny_baseline_flat") else {"chroma", "beat", "tempo", "key"})
        assert model.model.encoder.num_levels == (1 if name == "tiny_baseline_flat" else 3)
        assert model.conditioner.conditioners["midi"].spec().mode == ("binary" if "binary" in name else "soft")


def test_tiny_fits_the_demo_dataset_config_and_binary_needs_a_binary_dataset():
    demo = json.loads((REPO / "dataset_configs/hsmad/demo.json").read_text())
    assert validate_pair(load("tiny"), demo) == []
    problems = validate_pair(load("tiny_binary_srm"), demo)
    assert [p.path for p in problems] == ["dataset.structure.mode"]
    assert validate_pair(load("tiny_binary_srm"), {**demo, "structure": {"mode": "binary"}}) == []



def test_paper_configs_drop_drums_and_their_dataset_configs_agree():
    """Drum hits are not written into the 128 pitched rows of the full-size configs (a snare would share
    pitched D2's row; spec §2: drums kept separate or dropped); the tiny configs keep the demo's drums."""
    datasets = {n: json.loads((REPO / "dataset_configs/hsmad" / f"{n}.json").read_text())
                for n in ("slakh", "maestro", "folder", "demo")}
    for path in sorted(CONFIGS.glob("*.json")):
        config = load(path.stem)
        (midi,) = [c for c in config["model"]["conditioning"]["configs"] if c["type"] == "hierarchical_midi"]
        drums = midi["config"].get("drums", "keep")
        assert drums == ("keep" if path.stem.startswith("tiny") else "drop"), path.name
    paper = load("paper")
    for name in ("slakh", "maestro", "folder"):
        assert datasets[name]["structure"]["drums"] == "drop"
        assert validate_pair(paper, datasets[name]) == [], name
    assert any("drums" in p.message for p in validate_pair(paper, datasets["demo"]))
