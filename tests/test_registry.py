"""Registry, install() and the factories: registered types build through stable-audio-tools' own
factories, unknown types list the known ones, and a checkpoint rebuilds the same model."""
from __future__ import annotations

import pytest
import torch
from conftest import REPO, load_json

import saga_hsmad
from saga_hsmad.patching import installed_sites
from saga_hsmad.registry import CONDITIONERS, Registry, UnknownTypeError


def tiny():
    return load_json(REPO / "model_configs/generate/tiny.json")


def test_install_is_idempotent_and_patches_every_by_value_site():
    saga_hsmad.install()
    before = installed_sites()
    saga_hsmad.install()
    assert installed_sites() == before
    import stable_audio_tools
    import stable_audio_tools.models.diffusion as sat_diffusion
    import stable_audio_tools.training as sat_training

    assert stable_audio_tools.create_model_from_config is saga_hsmad.create_model_from_config
    assert sat_diffusion.create_multi_conditioner_from_conditioning_config is \
        saga_hsmad.create_multi_conditioner_from_conditioning_config
    assert sat_training.create_training_wrapper_from_config is saga_hsmad.create_training_wrapper_from_config
    # the multi-conditioner factory is imported by value in models.diffusion too: both sites patched
    assert len(before["create_multi_conditioner_from_conditioning_config"]) >= 2


def test_stock_factory_builds_registered_types():
    from stable_audio_tools.models.factory import create_model_from_config

    model = create_model_from_config(tiny())
    assert type(model.pretransform).__name__ == "PatchPretransform"
    assert type(model.conditioner.conditioners["prompt"]).__name__ == "LocalT5Conditioner"


def test_unknown_types_list_known_ones():
    config = tiny()
    config["model"]["conditioning"]["configs"][0]["type"] = "t5_locl"
    with pytest.raises(UnknownTypeError) as e:
        saga_hsmad.create_model_from_config(config)
    assert "model.conditioning.configs[0].type" in str(e.value) and "t5_local" in str(e.value)
    config = tiny()
    config["model"]["diffusion"]["type"] = "ditt"
    with pytest.raises(UnknownTypeError, match="model.diffusion.type.*dit"):
        saga_hsmad.create_model_from_config(config)
    config = tiny()
    config["model"]["pretransform"]["type"] = "pach"
    with pytest.raises(UnknownTypeError, match="patch"):
        saga_hsmad.create_model_from_config(config)


def test_registry_rejects_duplicates_and_upstream_shadowing():
    reg = Registry("thing", upstream_types=("dit",))

    @reg.register("a")
    class A:
        pass

    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(type("B", (), {}))
    with pytest.raises(ValueError, match="shadow"):
        reg.register("dit")(type("C", (), {}))
    assert "t5_local" in CONDITIONERS


def test_typo_in_a_registered_type_config_names_the_key():
    config = tiny()
    config["model"]["conditioning"]["configs"][0]["config"]["max_lenght"] = 8
    with pytest.raises(TypeError, match=r"model.conditioning.configs\[0\].config.*max_lenght"):
        saga_hsmad.create_model_from_config(config)


def test_round_trip_config_model_checkpoint_same_outputs(tmp_path):
    from saga_hsmad.checkpoints import load_model, save_inference_checkpoint
    from saga_hsmad.inference.generate import conditioning_inputs, decode, generate_latents, linear_schedule

    config = tiny()
    torch.manual_seed(0)
    model = saga_hsmad.create_model_from_config(config).eval()
    path = tmp_path / "model.ckpt"
    save_inference_checkpoint(path, model.state_dict(), config, ema=False)
    loaded, loaded_config, info = load_model(path)
    assert loaded_config == config and info["kind"] == "inference"

    def run(m):
        cond = [{"prompt": "strings", "seconds_total": 3.0}]
        inputs = conditioning_inputs(m, cond, torch.device("cpu"))
        g = torch.Generator().manual_seed(123)
        return decode(m, generate_latents(m, inputs, (1, 128, 32), linear_schedule(3), generator=g))

    assert torch.equal(run(model), run(loaded))
    # and a differently initialised model of the same config differs (the test can fail)
    torch.manual_seed(1)
    other = saga_hsmad.create_model_from_config(config).eval()
    assert not torch.equal(run(model), run(other))


def test_export_cli_takes_ema_weights_and_drops_training_state(tmp_path):
    from saga_hsmad.checkpoints import load_model
    from saga_hsmad.cli.export import export

    config = tiny()
    model = saga_hsmad.create_model_from_config(config)
    state = {f"diffusion.{k}": v for k, v in model.state_dict().items()}
    ema = {f"diffusion_ema.ema_model.{k}": v + 1.0 for k, v in model.model.state_dict().items()}
    torch.save({"state_dict": {**state, **ema}, "model_config": config, "optimizer_states": [{}]},
               tmp_path / "train.ckpt")
    info = export(str(tmp_path / "train.ckpt"), str(tmp_path / "model.ckpt"))
    assert info == {"kind": "training", "ema": True, "tensors": len(model.state_dict())}
    saved = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert set(saved) == {"state_dict", "model_config", "ema"}
    key = next(k for k in model.model.state_dict() if model.model.state_dict()[k].is_floating_point())
    assert torch.equal(saved["state_dict"][f"model.{key}"], model.model.state_dict()[key] + 1.0)
    loaded, _, info = load_model(tmp_path / "model.ckpt")
    assert info["ema"] is True
    with pytest.raises(FileExistsError):
        export(str(tmp_path / "train.ckpt"), str(tmp_path / "model.ckpt"))
    export(str(tmp_path / "train.ckpt"), str(tmp_path / "online.safetensors"), use_ema=False)
    assert load_model(tmp_path / "online.safetensors")[2]["ema"] is False


def test_explicit_api_needs_no_patching():
    """saga_hsmad.create_model_from_config builds a stock DiT with our pretransform and conditioners in a
    process where install() never ran, and leaves stable-audio-tools' factories untouched."""
    import subprocess
    import sys

    code = (
        "import json, saga_hsmad, stable_audio_tools.models.diffusion as d\n"
        "original = d.create_diffusion_cond_from_config\n"
        f"cfg = json.load(open({str(REPO / 'model_configs/generate/tiny.json')!r}))\n"
        "m = saga_hsmad.create_model_from_config(cfg)\n"
        "assert type(m.pretransform).__name__ == 'PatchPretransform'\n"
        "assert d.create_diffusion_cond_from_config is original\n"
        "print('min_input_length', m.min_input_length)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "min_input_length 64" in proc.stdout
