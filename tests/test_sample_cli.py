"""sample.py's command line (issue 13, item 11): flags must be spelled out, flags of another mode are refused
before the model is loaded, and ``--ckpt X --help`` names the mode X runs in. Tiny checkpoints with random
weights of each kind stand in for trained ones."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import REPO, load_json

TINY = {"sr": "model_configs/saga_sr/tiny.json", "midi": "model_configs/hsmad/tiny.json",
        "generate": "model_configs/generate/tiny.json"}


def save_tiny(path, config: dict):
    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    torch.manual_seed(0)
    save_inference_checkpoint(path, saga_hsmad.create_model_from_config(config).state_dict(), config, ema=False)
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """kind → a tiny exported checkpoint (random weights) of that kind; "sr_training": the SR one as a training
    checkpoint (a torch file with ``diffusion.`` keys and the config beside them)."""
    import saga_hsmad

    folder = tmp_path_factory.mktemp("ckpts")
    paths = {kind: save_tiny(folder / f"{kind}.safetensors", load_json(REPO / path)) for kind, path in TINY.items()}
    config = load_json(REPO / TINY["sr"])
    state = saga_hsmad.create_model_from_config(config).state_dict()
    paths["sr_training"] = folder / "last.ckpt"
    torch.save({"state_dict": {f"diffusion.{k}": v for k, v in state.items()}, "model_config": config},
               paths["sr_training"])
    return paths


def sample_main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("sample_script", REPO / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_abbreviated_flags_are_refused(ckpts, tmp_path, capsys):
    """``--cfg-t`` is a prefix of ``--cfg-text`` only; argparse's default would take it for that flag."""
    with pytest.raises(SystemExit) as e:
        sample_main(["--ckpt", str(ckpts["sr"]), "--output", str(tmp_path), "--input", "x.wav", "--cfg-t", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: unrecognized arguments: --cfg-t") and err.count("\n") == 1, err


@pytest.mark.parametrize("kind, argv, flag, owner, runs", [
    ("midi", ["--midi", "x.mid", "--caption", "piano"], "--caption", "super_resolution", "it runs in the midi mode"),
    ("sr", ["--input", "x.wav", "--prompt", "strings"], "--prompt", "generate", "it runs in the super_resolution mode"),
    ("sr_training", ["--input", "x.wav", "--style=piano"], "--style", "midi", "it runs in the super_resolution mode"),
    ("generate", ["--crossfade=linear"], "--crossfade", "super_resolution", "it runs in the generate mode"),
    ("sr", ["--mode", "generate", "--input", "x.wav"], "--input", "super_resolution", "--mode generate is given"),
])
def test_flags_of_another_mode_are_refused_before_the_model_is_loaded(ckpts, tmp_path, capsys, monkeypatch, kind,
                                                                      argv, flag, owner, runs):
    import saga_hsmad.checkpoints

    monkeypatch.setattr(saga_hsmad.checkpoints, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(SystemExit) as e:
        sample_main(["--ckpt", str(ckpts[kind]), "--output", str(tmp_path)] + argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"ERROR: {flag} is a flag of the {owner} mode, but "), err
    assert f"{runs} (see sample.py --ckpt {ckpts[kind]} --help)" in err, err
    assert not any(tmp_path.iterdir())


def test_flags_shared_by_two_modes_belong_to_both():
    from saga_hsmad.inference.modes import available_modes, foreign_flag

    modes = {m.name: m for m in available_modes()}
    assert foreign_flag(["--crossfade", "--batch-windows"], modes["midi"], list(modes.values())) is None
    assert foreign_flag(["--crossfade", "--batch-windows"], modes["super_resolution"], list(modes.values())) is None
    assert foreign_flag(["--steps", "--seed", "--output"], modes["generate"], list(modes.values())) is None  # common
    assert foreign_flag(["--steps", "--midi"], modes["generate"], list(modes.values())) == ("--midi", "midi")


@pytest.mark.parametrize("kind, extra, says", [
    ("midi", [], "holds a mrci_unet model: sample.py runs it in the midi mode"),
    ("sr", [], "holds a dit_concat model: sample.py runs it in the super_resolution mode"),
    ("sr_training", ["-h"], "holds a dit_concat model: sample.py runs it in the super_resolution mode"),
    ("generate", [], "holds a dit model: sample.py runs it in the generate mode"),
    ("sr", ["--mode", "generate"], "holds a dit_concat model: --mode runs it in the generate mode"),
])
def test_help_with_a_checkpoint_names_its_mode(ckpts, capsys, kind, extra, says):
    with pytest.raises(SystemExit) as e:
        sample_main(["--ckpt", str(ckpts[kind])] + (extra if "-h" in extra else ["--help"] + extra))
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert says in out, out[:600]
    assert out.index(says) < out.index("options:")  # said before the list of flags


def test_help_with_a_missing_checkpoint_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sample_main(["--ckpt", str(tmp_path / "nothing.safetensors"), "--help"])
    assert e.value.code == 0
    assert f"--ckpt {tmp_path / 'nothing.safetensors'}: no such file" in capsys.readouterr().out


def test_model_config_with_a_syntax_error_names_the_file(ckpts, tmp_path, capsys):
    bad = tmp_path / "override.json"
    bad.write_text('{"model_type": "diffusion_cond",\n  "sample_rate": 44100,,}')
    assert sample_main(["--ckpt", str(ckpts["sr"]), "--output", str(tmp_path), "--input", "x.wav",
                        "--model-config", str(bad)]) == 1
    assert f"{bad}: not valid JSON at line 2 column 24" in capsys.readouterr().err
