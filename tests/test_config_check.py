"""Config validation names the key path; describe is generated from the constructors."""
from __future__ import annotations

import json

import pytest
from conftest import REPO, load_json

from saga_hsmad.config_check import ConfigError, describe, load_config, validate_model_config

MODEL_CONFIGS = sorted((REPO / "model_configs").rglob("*.json"))
DATASET_CONFIGS = sorted((REPO / "dataset_configs").rglob("*.json"))


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_model_config_validates(path):
    load_config(path, "model")


@pytest.mark.parametrize("path", DATASET_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_dataset_config_validates(path):
    load_config(path, "dataset")


def paths(config):
    return [p.path for p in validate_model_config(config)]


def tiny():
    return load_json(REPO / "model_configs/generate/tiny.json")


def test_unknown_keys_are_reported_with_their_path():
    config = tiny()
    config["training"]["learning_rat"] = 1e-4
    config["model"]["diffusion"]["config"]["embed_dimm"] = 64
    config["model"]["conditioning"]["configs"][1]["config"]["max_vall"] = 3
    found = paths(config)
    assert "training.learning_rat" in found
    assert "model.diffusion.config.embed_dimm" in found
    assert "model.conditioning.configs[1].config.max_vall" in found


def test_wrong_types_and_missing_keys():
    config = tiny()
    config["model"]["diffusion"]["config"]["depth"] = "two"
    config["training"]["use_ema"] = "yes"
    del config["sample_rate"]
    found = paths(config)
    assert "sample_rate" in found
    config["sample_rate"] = 44100
    found = paths(config)
    assert "model.diffusion.config.depth" in found and "training.use_ema" in found


def test_dimension_mismatches_between_parts():
    config = tiny()
    config["model"]["io_channels"] = 64  # the patch pretransform encodes 2 x 64 = 128 channels
    config["model"]["diffusion"]["config"]["cond_token_dim"] = 32  # conditioning is 64 wide
    config["model"]["diffusion"]["config"]["global_cond_dim"] = 128  # one 64-wide global condition
    config["model"]["diffusion"]["global_cond_ids"] = ["seconds_total", "missing_id"]
    found = paths(config)
    for key in ("model.io_channels", "model.diffusion.config.io_channels", "model.diffusion.config.cond_token_dim",
                "model.diffusion.global_cond_ids"):
        assert key in found, found


def test_load_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model_type": "diffusion_cond",\n "sample_rate": }')
    with pytest.raises(ConfigError, match=r"bad.json.*line 2"):
        load_config(bad)
    config = tiny()
    config["model"]["diffusion"]["type"] = "nope"
    bad.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"model.diffusion.type.*nope"):
        load_config(bad)


def test_describe_lists_registered_types_with_defaults():
    text = describe()
    assert "t5_local" in text and "max_length: int = 128" in text
    assert "patch" in text and "patch_size: int = 256" in text
    assert "audio_folder" in text


def test_dataset_must_render_the_piano_roll_the_model_expects():
    from saga_hsmad.config_check import validate_pair

    binary_model = load_json(REPO / "model_configs/hsmad/tiny_binary_srm.json")
    soft_data = load_json(REPO / "dataset_configs/hsmad/demo.json")
    binary_data = load_json(REPO / "dataset_configs/hsmad/demo_binary.json")
    assert any("mode" in p.path or "mode" in p.message for p in validate_pair(binary_model, soft_data))
    assert validate_pair(binary_model, binary_data) == []
    assert validate_pair(load_json(REPO / "model_configs/hsmad/tiny.json"), soft_data) == []


def test_dit_concat_narrower_than_its_input_is_refused():
    config = load_json(REPO / "model_configs/saga_sr/tiny.json")
    assert validate_model_config(config) == []
    config["model"]["diffusion"]["config"]["embed_dim"] = 128          # < 128 latent + 128 LR channels
    found = {p.path: p.message for p in validate_model_config(config)}
    assert "model.diffusion.config.embed_dim" in found and ">= 256" in found["model.diffusion.config.embed_dim"]


# -- stable-audio-tools' own configs (issue 13, item 7) ------------------------------------------------------
# Minimal excerpts of stable-audio-tools' model_configs/txt2audio/stable_audio_1_0.json and stable_audio_2_0.json
# (repository Stability-AI/stable-audio-tools; not shipped in the 0.0.19 wheel): every key they use that this
# project checks, with their values; the autoencoder's inner config and the demo prompts are shortened.
def sat_config(version: int) -> dict:
    number = "int" if version == 1 else "number"
    config = {
        "model_type": "diffusion_cond", "sample_size": 4194304 if version == 1 else 12582912,
        "sample_rate": 44100, "audio_channels": 2,
        "model": {
            "pretransform": {"type": "autoencoder", "iterate_batch": True,
                             "config": {"latent_dim": 64, "downsampling_ratio": 1024 if version == 1 else 2048,
                                        "io_channels": 2, "bottleneck": {"type": "vae"}}},
            "conditioning": {"cond_dim": 768, "configs": [
                {"id": "prompt", "type": "clap_text",
                 "config": {"audio_model_type": "HTSAT-base", "enable_fusion": True, "clap_ckpt_path": "/path/to/clap.ckpt",
                            "use_text_features": True, "feature_layer_ix": -2}},
                {"id": "seconds_start", "type": number, "config": {"min_val": 0, "max_val": 512}},
                {"id": "seconds_total", "type": number, "config": {"min_val": 0, "max_val": 512}}]},
            "io_channels": 64,
        },
        "training": {"demo": {"demo_every": 2000, "demo_steps": 250, "num_demos": 4, "demo_cfg_scales": [3, 6, 9],
                              "demo_cond": [{"prompt": "a piano", "seconds_start": 0, "seconds_total": 95},
                                            {"prompt": "a house track", "seconds_start": 0, "seconds_total": 90}]}},
    }
    if version == 1:
        config["model"]["diffusion"] = {
            "type": "adp_cfg_1d", "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
            "config": {"in_channels": 64, "context_embedding_features": 768, "context_embedding_max_length": 79,
                       "channels": 256, "multipliers": [4, 4, 4, 5, 5], "factors": [1, 2, 2, 4]}}
        config["training"]["learning_rate"] = 4e-5
    else:
        config["model"]["diffusion"] = {
            "type": "dit", "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
            "global_cond_ids": ["seconds_start", "seconds_total"],
            "config": {"io_channels": 64, "embed_dim": 1536, "depth": 24, "num_heads": 24, "cond_token_dim": 768,
                       "global_cond_dim": 1536, "project_cond_tokens": False,
                       "transformer_type": "continuous_transformer"}}
        config["training"].update({
            "use_ema": True, "log_loss_info": False,
            "optimizer_configs": {"diffusion": {
                "optimizer": {"type": "AdamW", "config": {"lr": 5e-5, "betas": [0.9, 0.999], "weight_decay": 1e-3}},
                "scheduler": {"type": "InverseLR", "config": {"inv_gamma": 1000000, "power": 0.5, "warmup": 0.99}}}}})
    return config


@pytest.mark.parametrize("version", [1, 2])
def test_stable_audio_tools_own_configs_validate(version):
    config = sat_config(version)
    assert validate_model_config(config) == []
    config["training"]["demo"]["demo_cfg_scale"] = [3]  # its keys are accepted, a typo of one is not
    config["training"]["demo"]["demo_cond"] = {"prompt": "not a list"}
    found = {p.path: p.message for p in validate_model_config(config)}
    assert set(found) == {"training.demo.demo_cfg_scale", "training.demo.demo_cond"}, found
    assert "demo_cfg_scales" in found["training.demo.demo_cfg_scale"]


# -- config authoring gaps (issue 13, item 10) ---------------------------------------------------------------
def sr_tiny():
    return load_json(REPO / "model_configs/saga_sr/tiny.json")


def hsmad_tiny():
    return load_json(REPO / "model_configs/hsmad/tiny.json")


def problems(config):
    return {p.path: p.message for p in validate_model_config(config)}


def test_typos_inside_nested_objects_are_reported_with_their_path():
    hs = hsmad_tiny()
    hs["model"]["diffusion"]["config"]["encoder"]["conv_kernal"] = 7
    hs["model"]["diffusion"]["config"]["encoder"]["heads"] = "two"
    hs["model"]["diffusion"]["config"]["cond_dropout"]["styel"] = 0.1
    found = problems(hs)
    assert "'conv_kernel'" in found["model.diffusion.config.encoder.conv_kernal"]
    assert "int" in found["model.diffusion.config.encoder.heads"]
    assert "'style'" in found["model.diffusion.config.cond_dropout.styel"]
    sr = sr_tiny()
    sr["model"]["diffusion"]["config"]["cond_dropout"]["lr_latnet"] = 0.1
    sr["model"]["diffusion"]["config"]["cond_dropout"]["text"] = 1.5
    found = problems(sr)
    assert "'lr_latent'" in found["model.diffusion.config.cond_dropout.lr_latnet"]
    assert "[0, 1]" in found["model.diffusion.config.cond_dropout.text"]


def test_optimizer_and_scheduler_sections_are_checked():
    config = sr_tiny()
    section = config["training"]["optimizer_configs"]["diffusion"]
    section["optimizer"]["config"]["weight_decy"] = 0.1
    section["scheduler"]["config"]["powr"] = 0.5
    section["optimiser"] = {}
    config["training"]["optimizer_configs"]["autoencoder"] = {}
    found = problems(config)
    base = "training.optimizer_configs"
    assert "'weight_decay'" in found[f"{base}.diffusion.optimizer.config.weight_decy"]
    assert "'power'" in found[f"{base}.diffusion.scheduler.config.powr"]
    assert "'optimizer'" in found[f"{base}.diffusion.optimiser"]
    assert f"{base}.autoencoder" in found
    config = sr_tiny()
    section = config["training"]["optimizer_configs"]["diffusion"]
    section["optimizer"]["type"] = "AdamX"
    section["scheduler"]["type"] = "Cosine"
    found = problems(config)
    assert "torch.optim" in found[f"{base}.diffusion.optimizer.type"]
    assert "InverseLR" in found[f"{base}.diffusion.scheduler.type"]
    config = sr_tiny()
    del config["training"]["optimizer_configs"]["diffusion"]["optimizer"]["config"]
    config["training"]["optimizer_configs"]["diffusion"]["scheduler"]["config"] = {"T_max": 10}
    config["training"]["optimizer_configs"]["diffusion"]["scheduler"]["type"] = "CosineAnnealingLR"
    assert list(problems(config)) == [f"{base}.diffusion.optimizer.config"]  # torch's own schedulers are checked too


def test_every_dit_concat_key_is_checked():
    config = sr_tiny()
    del config["model"]["diffusion"]["config"]["num_heads"]
    config["model"]["diffusion"]["config"]["num_head"] = 4  # was passed on to the DiT and ignored (24 heads)
    found = problems(config)
    assert list(found) == ["model.diffusion.config.num_head"] and "'num_heads'" in found["model.diffusion.config.num_head"]
    config = sr_tiny()
    config["model"]["diffusion"]["config"]["transformer_type"] = "continuous"  # a DiT key: checked against its Literal
    config["model"]["diffusion"]["config"]["dim_heads"] = 64  # a ContinuousTransformer key the DiT passes on
    assert list(problems(config)) == ["model.diffusion.config.transformer_type"]


def test_lists_are_checked_as_lists_item_by_item():
    config = hsmad_tiny()
    config["model"]["diffusion"]["config"]["widths"] = 128
    config["model"]["diffusion"]["config"]["num_res_blocks"] = [1, "one", 1]
    config["model"]["diffusion"]["config"]["self_attention_levels"] = ["high", "hihg"]
    found = problems(config)
    assert found["model.diffusion.config.widths"] == "expected a list of int, got 128"
    assert "item 1" in found["model.diffusion.config.num_res_blocks"]
    assert '"middle"' in found["model.diffusion.config.self_attention_levels"]


def test_style_dim_must_be_the_width_of_the_style_condition():
    config = hsmad_tiny()
    config["model"]["diffusion"]["config"]["style_dim"] = 32  # the pooled t5_local style is cond_dim = 64 wide
    found = problems(config)
    assert list(found) == ["model.diffusion.config.style_dim"] and "64" in found["model.diffusion.config.style_dim"]
    del config["model"]["diffusion"]["config"]["style_dim"]  # 0 = no style input, while a style is routed
    assert "missing" in problems(config)["model.diffusion.config.style_dim"]


def test_negative_sizes_and_cutoffs_are_refused():
    from saga_hsmad.config_check import validate_dataset_config

    def dataset_problems(**keys):
        return {p.path: p.message for p in validate_dataset_config({"dataset_type": "super_resolution", "root": "x",
                                                                     **keys})}

    config = sr_tiny()
    config["sample_size"] = -32768
    assert "positive" in problems(config)["sample_size"]
    assert "positive" in dataset_problems(sample_size=-5)["dataset.sample_size"]
    assert "0 < low <= high" in dataset_problems(cutoff_range=[-4000, 16000])["dataset.cutoff_range"]
    assert "dataset.cutoff_range" in dataset_problems(cutoff_range=[8000, 4000])
    assert "dataset.cutoff_step_hz" in dataset_problems(cutoff_step_hz=0)
    assert dataset_problems(cutoff_range=[2000, 16000], cutoff_step_hz=1) == {}


def test_json_syntax_error_names_file_line_and_column(tmp_path, capsys):
    from saga_hsmad.config_check import main

    bad = tmp_path / "bad_config.json"
    bad.write_text('{"model_type": "diffusion_cond",\n "sample_rate": }')
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: not valid JSON at line 2 column 17" in err, err


def test_describe_spells_out_literals_and_lists_upstream_types_and_schedulers():
    text = describe()
    assert 'global_cond_type: "prepend" | "adaLN" = "prepend"' in text
    assert "Literal" not in text and "typing" not in text
    assert "## stable-audio-tools' own conditioner types" in text and "\nt5  (stable_audio_tools" in text
    assert "\ndit  (stable_audio_tools" in text and "autoencoder" in text
    assert "\nInverseLR  (saga_hsmad.training.schedulers" in text and "inv_gamma: float = 1.0" in text
    assert "CosineAnnealingLR" in text
    assert "demo_cond" in text and "learning_rate: float | null" in text
