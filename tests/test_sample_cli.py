"""sample.py's command line (issue 13, item 11): flags must be spelled out. A tiny checkpoint with random
weights stands in for a trained one."""
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
