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
