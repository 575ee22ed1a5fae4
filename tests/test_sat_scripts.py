"""stable-audio-tools' own scripts after ``saga_hsmad.install()`` (issue 13, items 6-8).

Upstream's ``train.py`` and ``unwrap_model.py`` are not in its wheel. ``install.sh`` puts the 0.0.19 copies in
``$VENV/share/stable-audio-tools`` (or set ``SAT_SCRIPTS_DIR``); they are checked against their sha256 and copied
into the test's folder, ``train.py`` with its hard-coded ``accelerator="gpu"`` changed to ``"cpu"`` and nothing
else. The runs are in-process through ``python -m saga_hsmad.cli.sat``'s ``main``, as a user's command would be.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, load_json

# stable-audio-tools commit d7e78b09ace664ccc84256e133b3317d18b8a425 ("0.0.19 update"); unchanged on main since
SAT_SCRIPTS = {
    "train.py": "67e8cc116af1381e5bba88c8e2660c62b102b59a1ed2f0cdee90138cdcf03b02",
    "defaults.ini": "4c2e61858755de6cf538c58d721c73b3c36e711baf202fd8561c2d1ade1da6ae",
    "unwrap_model.py": "71ec0a1c6625ed42a0a8a2c7c8568e56c43ffb30fc7088dcfbca9a215af18855",
}


def sat_script(name: str) -> Path:
    folder = Path(os.environ.get("SAT_SCRIPTS_DIR", Path(sys.prefix) / "share" / "stable-audio-tools"))
    path = folder / name
    if not path.is_file():
        pytest.skip(f"stable-audio-tools' {name} is not in {folder} (install.sh fetches it; or set SAT_SCRIPTS_DIR)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == SAT_SCRIPTS[name], f"{path} is not stable-audio-tools 0.0.19's {name}"
    return path


@pytest.fixture
def sat_dir(tmp_path) -> Path:
    """A working folder with upstream's defaults.ini, unwrap_model.py and train.py on the CPU."""
    folder = tmp_path / "sat"
    folder.mkdir()
    text = sat_script("train.py").read_text()
    assert text.count('accelerator="gpu"') == 1
    (folder / "train.py").write_text(text.replace('accelerator="gpu"', 'accelerator="cpu"'))
    for name in ("defaults.ini", "unwrap_model.py"):
        (folder / name).write_bytes(sat_script(name).read_bytes())
    return folder


def run_sat(monkeypatch, folder: Path, script: str, *args: str, max_steps: int | None = None) -> None:
    """``python -m saga_hsmad.cli.sat SCRIPT ARGS`` run from ``folder``; fails unless the script exits 0."""
    from saga_hsmad.cli.sat import main

    monkeypatch.chdir(folder)
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # seed_everything sets it: restored after the test
    monkeypatch.setenv("WANDB_MODE", "disabled")
    if max_steps is not None:
        monkeypatch.setenv("PL_TRAINER_MAX_STEPS", str(max_steps))  # upstream's train.py has no --max-steps
    strategy = torch.multiprocessing.get_sharing_strategy()  # upstream's train.py sets "file_system"
    try:
        assert main([str(folder / script), *args]) == 0
    finally:
        torch.multiprocessing.set_sharing_strategy(strategy)


def train_args(model_config: Path, dataset_config: Path, save_dir: Path) -> list[str]:
    return ["--model-config", str(model_config), "--dataset-config", str(dataset_config), "--save-dir",
            str(save_dir), "--logger", "none", "--precision", "32", "--num-workers", "0", "--batch-size", "2",
            "--checkpoint-every", "1"]


def checkpoint_at(save_dir: Path, step: int) -> dict:
    (path,) = save_dir.glob(f"epoch=*-step={step}.ckpt")
    return torch.load(path, map_location="cpu", weights_only=False)


def test_sat_train_py_trains_tiny_saga_sr_with_our_loader_and_demos(sat_dir, demo_corpus, tmp_path, monkeypatch):
    """Upstream's train.py gets our super_resolution loader (its own returned None) and our demo callback."""
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(demo_corpus))
    config = load_json(REPO / "model_configs/saga_sr/tiny.json")
    config["training"]["demo"].update(demo_every=1, demo_steps=2, demo_cfg_scales=[1.0], num_demos=1)
    (tmp_path / "sr.json").write_text(json.dumps(config))
    save = tmp_path / "runs"
    run_sat(monkeypatch, sat_dir, "train.py",
            *train_args(tmp_path / "sr.json", REPO / "dataset_configs/saga_sr/demo.json", save), max_steps=2)
    ckpt = checkpoint_at(save, 2)
    assert ckpt["global_step"] == 2 and ckpt["model_config"] == config
    assert any(k.startswith("diffusion.conditioner.conditioners.") for k in ckpt["state_dict"])
    demos = sorted(p.name for p in (save / "demos").glob("*.wav"))
    assert demos == ["step_0000001_cfg_1_0.wav", "step_0000002_cfg_1_0.wav"]


def test_sat_train_py_trains_tiny_hsmad_without_a_demo_section(sat_dir, demo_corpus, tmp_path, monkeypatch):
    """HS-MAD's configs have no training.demo, which upstream's demo factory requires; the MIDI dataset gets
    the pretransform ratio from --model-config."""
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(demo_corpus))
    model_config = REPO / "model_configs/hsmad/tiny.json"
    assert "demo" not in load_json(model_config)["training"]
    save = tmp_path / "runs"
    run_sat(monkeypatch, sat_dir, "train.py",
            *train_args(model_config, REPO / "dataset_configs/hsmad/demo.json", save), max_steps=2)
    ckpt = checkpoint_at(save, 2)
    assert ckpt["global_step"] == 2 and ckpt["model_config"] == load_json(model_config)
    assert any(k.startswith("diffusion_ema.") for k in ckpt["state_dict"])
    assert not (save / "demos").exists()


def test_unwrap_model_drops_conditioner_ema_and_config_export_keeps_them(sat_dir, demo_corpus, tmp_path,
                                                                            monkeypatch, capsys):
    """Upstream's unwrap_model.py writes the online conditioner weights and no config; cli.export writes the
    EMA ones and the config; sample.py on the unwrapped file names the missing config."""
    from test_sr_inference import sample_main

    from saga_hsmad.checkpoints import load_model, read_checkpoint
    from saga_hsmad.cli.export import export

    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(demo_corpus))
    model_config = REPO / "model_configs/generate/tiny.json"  # EMA on, a trainable seconds_total conditioner
    save = tmp_path / "runs"
    run_sat(monkeypatch, sat_dir, "train.py",
            *train_args(model_config, REPO / "dataset_configs/demo_audio.json", save), max_steps=3)
    (ckpt_path,) = save.glob("epoch=*-step=3.ckpt")
    run_sat(monkeypatch, sat_dir, "unwrap_model.py", "--model-config", str(model_config), "--ckpt-path",
            str(ckpt_path), "--name", str(tmp_path / "unwrapped"))
    export(str(ckpt_path), str(tmp_path / "export.safetensors"), trust=True)  # upstream's ckpt pickles its args

    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]
    ema_keys = [k for k in state if k.startswith("conditioner_ema.ema_model.")]
    assert ema_keys
    unwrapped, unwrapped_config, _ = read_checkpoint(tmp_path / "unwrapped.ckpt")
    exported, exported_config, _ = read_checkpoint(tmp_path / "export.safetensors")
    assert unwrapped_config is None and exported_config == load_json(model_config)
    for key in ema_keys:
        name = "conditioner.conditioners." + key[len("conditioner_ema.ema_model."):]
        assert not torch.equal(state[key], state["diffusion." + name])  # the EMA has moved off the online weights
        assert torch.equal(unwrapped[name], state["diffusion." + name])  # upstream: online
        assert torch.equal(exported[name], state[key])  # ours: EMA

    capsys.readouterr()
    code = sample_main(["--ckpt", str(tmp_path / "unwrapped.ckpt"), "--output", str(tmp_path / "out"),
                        "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "unwrapped.ckpt: carries no model config" in err
    assert "--model-config" in err and "saga_hsmad.cli.export" in err
    model, _, _ = load_model(tmp_path / "unwrapped.ckpt", load_json(model_config))  # with the config it loads
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in unwrapped.items())


def test_sat_loader_factory_routes_registered_and_upstream_types(noise_folder):
    """Registered dataset types get our loader, whose every epoch is new; upstream's types its own loader."""
    import stable_audio_tools.data.dataset as sat_data

    from saga_hsmad.data.loader import RepeatedDataset
    from saga_hsmad.patching import originals
    from saga_hsmad.sat_scripts import UpstreamLoopSampler

    args = dict(batch_size=2, sample_size=4096, sample_rate=44100, audio_channels=2, num_workers=0)
    config = {"dataset_type": "audio_folder", "roots": str(noise_folder)}
    assert originals()["create_dataloader_from_config"](config, **args) is None  # upstream's: no loader, no error
    ours = sat_data.create_dataloader_from_config(config, **args)
    assert isinstance(ours.dataset, RepeatedDataset) and isinstance(ours.sampler, UpstreamLoopSampler)
    epochs = [list(ours.sampler) for _ in range(3)]
    assert sorted(epochs[0]) == list(range(4)) and sorted(epochs[1]) == list(range(4, 8))  # epoch 1: e * n + j
    assert epochs[2][0] >= 8
    valid = sat_data.create_dataloader_from_config({"dataset_type": "audio_folder", "roots": str(noise_folder)},
                                                   **args, shuffle=False)
    assert list(valid.sampler) == list(valid.sampler) == [0, 1, 2, 3]  # validation: the same windows each time
    upstream = sat_data.create_dataloader_from_config(
        {"dataset_type": "audio_dir", "datasets": [{"id": "noise", "path": str(noise_folder)}]},
        **{**args, "num_workers": 1})  # upstream's loader hard-codes persistent workers
    assert type(upstream.dataset) is sat_data.SampleDataset


def test_sat_demo_factory_gives_our_callback_or_none(tmp_path):
    import pytorch_lightning as pl
    import stable_audio_tools.training as sat_training

    from saga_hsmad.patching import originals
    from saga_hsmad.training.callbacks import DemoCallback

    config = load_json(REPO / "model_configs/hsmad/tiny.json")
    with pytest.raises(KeyError, match="num_demos"):  # upstream's needs training.demo, which HS-MAD's lacks
        originals()["create_demo_callback_from_config"](config, demo_dl=None)
    none = sat_training.create_demo_callback_from_config(config, demo_dl=None)
    assert type(none) is pl.Callback
    config["training"]["demo"] = {"demo_every": 5, "demo_cond": {}}  # upstream's default, which it crashes on
    ours = sat_training.create_demo_callback_from_config(config, demo_dl=None)
    assert isinstance(ours, DemoCallback) and ours.demo_every == 5 and ours.demo_cond == []
    uncond = {"model_type": "diffusion_uncond", "sample_size": 4096, "sample_rate": 44100, "training": {}}
    assert type(sat_training.create_demo_callback_from_config(uncond)).__name__ == "DiffusionUncondDemoCallback"


def test_demo_callback_conditions_on_demo_cond_over_the_batch(tmp_path):
    """training.demo.demo_cond (upstream's key): its entries are the demos, laid over batch items (cycling)
    for the conditions they do not name; without it, or with demo_cond_from_batch, the batch's first items."""
    from test_sat_workarounds import batch, our_wrapper, tiny_config

    from saga_hsmad.training.callbacks import DemoCallback

    config = tiny_config()
    wrapper = our_wrapper(config)
    reals, metadata = batch(config, bare_masks=False)
    seen = []
    conditioner = wrapper.diffusion.conditioner
    forward = conditioner.forward
    conditioner.forward = lambda md, device: seen.append(md) or forward(md, device)
    demo_cond = [{"prompt": "solo piano"}, {"prompt": "strings"}, {"prompt": "drums", "seconds_total": 3.0}]
    callback = DemoCallback(tmp_path / "demos", demo_every=1, demo_steps=2, demo_cfg_scales=[1.0], demo_cond=demo_cond)
    paths = callback.write_demos(wrapper, (reals, metadata), step=3)
    assert len(paths) == 3 and all(p.is_file() for p in paths)
    (used,) = seen
    assert [md["prompt"] for md in used] == ["solo piano", "strings", "drums"]
    assert [md["seconds_total"] for md in used] == [1.0, 1.0, 3.0]
    assert used[2]["padding_mask"] is metadata[0]["padding_mask"]  # the third entry lies over batch item 0

    assert [md["prompt"] for md in DemoCallback(demo_cond=demo_cond, num_demos=2).demo_metadata(metadata)] == \
        ["solo piano", "strings"]
    for callback in (DemoCallback(), DemoCallback(demo_cond=demo_cond, demo_cond_from_batch=True)):
        assert [md["prompt"] for md in callback.demo_metadata(metadata)] == ["clip 0", "clip 1"]
    with pytest.raises(TypeError, match=r"training.demo.demo_cond must be a list"):
        DemoCallback(demo_cond="solo piano")
    with pytest.raises(TypeError, match=r"training.demo.demo_cond\[1\]"):
        DemoCallback(demo_cond=[{"prompt": "a"}, "b"])


def test_sat_runner_refuses_a_missing_script(tmp_path, capsys):
    from saga_hsmad.cli.sat import main

    assert main([str(tmp_path / "train.py"), "--model-config", "x.json"]) == 2
    assert f"ERROR {tmp_path / 'train.py'}: no such script" in capsys.readouterr().err


def test_upstream_demo_callback_fails_on_an_empty_demo_cond(tmp_path, monkeypatch):
    """Upstream's callback conditions on ``demo_cond`` (default {}); empty, there is nothing to condition on.
    Ours (above) then takes the batch."""
    from test_sat_workarounds import batch, our_wrapper, tiny_config

    from saga_hsmad.patching import originals

    config = tiny_config()
    config["training"]["demo"] = {"demo_every": 1, "num_demos": 1, "demo_steps": 2, "demo_cfg_scales": [1.0]}
    upstream = originals()["create_demo_callback_from_config"](config)
    trainer = type("Trainer", (), {"global_step": 1, "logger": None})()
    monkeypatch.chdir(tmp_path)  # it writes into the working directory
    with pytest.raises(ValueError, match=r"provided \[\]"):  # the text encoder is handed no prompts
        upstream.on_train_batch_end(trainer, our_wrapper(config), None, batch(config, bare_masks=False), 0)
    assert not list(tmp_path.glob("*.wav"))


def test_demo_callback_writes_the_displayed_conditions(tmp_path):
    """Upstream's display keys: cond_display_configs (audio, raw or pre-encoded) and display_audio_cond write
    each demo's conditioning audio beside it."""
    from test_sat_workarounds import batch, our_wrapper, tiny_config

    from saga_hsmad.audio_io import read_audio
    from saga_hsmad.training.callbacks import DemoCallback

    config = tiny_config()
    wrapper = our_wrapper(config)
    reals, metadata = batch(config, bare_masks=False)
    for i, md in enumerate(metadata):
        md["audio"] = 0.1 * torch.randn(2, 2048)
        md["latent"] = wrapper.diffusion.pretransform.encode(md["audio"][None])[0]
    callback = DemoCallback(tmp_path, demo_every=1, demo_steps=2, display_audio_cond=True,
                            cond_display_configs=[{"id": "latent", "type": "audio", "config": {"pre_encoded": True}}])
    paths = callback.write_demos(wrapper, (reals, metadata), step=4)
    assert sorted(p.name for p in paths) == ["step_0000004_audio_0.wav", "step_0000004_audio_1.wav",
                                             "step_0000004_cfg_1_0.wav", "step_0000004_cfg_1_1.wav",
                                             "step_0000004_latent_0.wav", "step_0000004_latent_1.wav"]
    for i, md in enumerate(metadata):
        for name in ("audio", "latent"):  # the latent decodes back to the audio it encodes
            audio, sr = read_audio(tmp_path / f"step_0000004_{name}_{i}.wav")
            assert sr == 44100 and np.abs(audio - md["audio"].numpy()).max() < 1e-4
    with pytest.raises(ValueError, match=r"cond_display_configs\[0\].type must be \"audio\""):
        DemoCallback(cond_display_configs=[{"id": "x", "type": "audio_dict"}])
    with pytest.raises(TypeError, match=r"cond_display_configs\[1\]"):
        DemoCallback(cond_display_configs=[{"id": "x", "type": "audio"}, {"type": "audio"}])
