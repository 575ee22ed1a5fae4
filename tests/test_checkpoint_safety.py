"""Issue 12, checkpoints: no code runs from a checkpoint, damaged files are refused by name, saves are atomic
and keep the umask's permissions, and Ctrl-C / SIGTERM during training leave a resumable checkpoint and no
export. Real checkpoints come from train.py on the tiny SAGA-SR and HS-MAD configs."""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
import pickletools
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, run_script

import saga_hsmad
from saga_hsmad.checkpoints import (CheckpointError, atomic_write, load_model, read_checkpoint,
                                    save_inference_checkpoint, verify_checkpoint)
from saga_hsmad.training.checkpoint_io import SafeCheckpointIO, remove_stale_temporaries

CONFIGS = {"saga_sr": ("model_configs/saga_sr/tiny.json", "dataset_configs/saga_sr/demo.json"),
           "hsmad": ("model_configs/hsmad/tiny.json", "dataset_configs/hsmad/demo.json")}


def train_args(kind: str | tuple[Path, str], save_dir: Path, name: str, *extra: str) -> list[str]:
    """train.py's arguments for a tiny config of ``CONFIGS`` or a (model config, dataset config) pair."""
    model, dataset = CONFIGS[kind] if isinstance(kind, str) else kind
    return ["--model-config", str(REPO / model), "--dataset-config", str(REPO / dataset), "--save-dir",
            str(save_dir), "--name", name, "--batch-size", "2", "--num-workers", "0", "--accelerator", "cpu", *extra]


@pytest.fixture(scope="session")
def runs(demo_corpus, tmp_path_factory) -> dict[str, Path]:
    """Run folders of two training steps (a checkpoint at each) of tiny SAGA-SR and tiny HS-MAD."""
    root = tmp_path_factory.mktemp("runs")
    env = {"SAGA_HSMAD_DEMO_CORPUS": str(demo_corpus), "OMP_NUM_THREADS": "1"}
    for kind in CONFIGS:
        run_script("train.py", *train_args(kind, root, kind, "--max-steps", "2", "--checkpoint-every", "1"), env=env)
    return {kind: root / kind for kind in CONFIGS}


def load_train_script():
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    return train


def run_main(main, argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def flip_bytes_in_largest_tensor(path: Path, count: int = 64) -> None:
    """Inverts ``count`` bytes in the middle of the largest tensor record of a torch zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(record.header_offset)
        header = f.read(30)
        start = record.header_offset + 30 + int.from_bytes(header[26:28], "little") \
            + int.from_bytes(header[28:30], "little") + record.file_size // 2
        f.seek(start)
        data = f.read(count)
        f.seek(start)
        f.write(bytes(b ^ 0xFF for b in data))


class WritesAFile:
    """Unpickling this creates ``marker``: the crafted-pickle attack of issue 12 item 1."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def tiny_model_config() -> dict:
    return json.loads((REPO / "model_configs/generate/tiny.json").read_text())


@pytest.fixture
def crafted(tmp_path) -> tuple[Path, Path]:
    """(a checkpoint that would write ``marker`` when unpickled, marker); its weights are real."""
    config = tiny_model_config()
    model = saga_hsmad.create_model_from_config(config)
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {f"diffusion.{k}": v for k, v in model.state_dict().items()},
                "model_config": config, "hook": WritesAFile(marker)}, path)
    return path, marker


# -- item 1: no code execution ------------------------------------------------------------------------------------
def test_real_checkpoints_hold_only_what_the_weights_only_loader_allows(runs):
    """The allowlist is empty because our checkpoints (optimizer, schedule, loops, callbacks, both EMAs, config)
    hold only tensors, OrderedDict and builtins. If this fails, a new type entered the checkpoints."""
    allowed = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2"}
    for run in runs.values():
        with zipfile.ZipFile(run / "checkpoints" / "last.ckpt") as archive:
            pickle_bytes = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        found = {str(arg) for op, arg, _ in pickletools.genops(pickle_bytes) if op.name in ("GLOBAL", "STACK_GLOBAL")}
        assert {g for g in found if not re.fullmatch(r"torch \w+Storage", g)} <= allowed, found
        assert SafeCheckpointIO().load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 2


def test_crafted_pickle_runs_no_code_through_any_loader(crafted, tmp_path):
    from saga_hsmad.cli.export import export
    from saga_hsmad.training.pretrained import load_pretrained, load_pretransform

    path, marker = crafted
    model = saga_hsmad.create_model_from_config(tiny_model_config())
    loaders = [lambda: read_checkpoint(path), lambda: load_model(path), lambda: load_pretrained(model, str(path)),
               lambda: load_pretransform(model, str(path)), lambda: export(str(path), str(tmp_path / "x.safetensors")),
               lambda: SafeCheckpointIO().load_checkpoint(path)]
    for load in loaders:
        with pytest.raises(CheckpointError, match=r"evil\.ckpt: loading it needs full unpickling.*io\.open.*"
                                                  r"--trust-checkpoint"):
            load()
        assert not marker.exists()
    # trusted, it loads (and the hook runs: that is what the flag allows)
    state, config, kind = read_checkpoint(path, trust=True)
    assert kind == "training" and marker.exists()


def test_a_foreign_object_names_its_type_and_the_flag(tmp_path):
    import argparse

    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(CheckpointError, match=r"argparse\.Namespace.*--trust-checkpoint"):
        read_checkpoint(path)
    assert torch.equal(read_checkpoint(path, trust=True)[0]["w"], torch.ones(2))


def test_a_legacy_torch_file_loads_weights_only_and_warns_that_it_has_no_checksum(tmp_path):
    plain, crafted = tmp_path / "old.ckpt", tmp_path / "old_evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, plain, _use_new_zipfile_serialization=False)
    torch.save({"state_dict": {}, "hook": WritesAFile(tmp_path / "pwned")}, crafted,
               _use_new_zipfile_serialization=False)
    with pytest.warns(UserWarning, match="no checksum"):
        assert torch.equal(read_checkpoint(plain)[0]["w"], torch.ones(2))
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="--trust-checkpoint"):
        read_checkpoint(crafted)
    assert not (tmp_path / "pwned").exists()


def test_files_that_are_not_checkpoints_are_refused_without_unpickling(tmp_path, monkeypatch):
    wav = tmp_path / "song.wav"
    sf.write(wav, np.zeros((100, 2), np.float32), 44100)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    empty = tmp_path / "last.ckpt"
    empty.write_bytes(b"")
    good = tmp_path / "step=1.ckpt"
    torch.save({"state_dict": {}}, good)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must not be reached"))
    for path, reason in [(wav, "not a checkpoint"), (text, "not a checkpoint"), (empty, r"empty \(0 bytes\)")]:
        with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: {reason}") as error:
            read_checkpoint(path)
        # the newest intact checkpoint is pointed to for a damaged checkpoint, not for a wrong file
        assert str(error.value).endswith(f"the newest intact checkpoint beside it is {good}") == (path == empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")


def test_sample_py_refuses_a_wav_and_a_crafted_pickle_in_one_line(crafted, tmp_path, capsys):
    import sample

    path, marker = crafted
    wav = tmp_path / "song.wav"
    sf.write(wav, np.zeros((100, 2), np.float32), 44100)
    for ckpt, reason in [(wav, "not a checkpoint"), (path, "--trust-checkpoint")]:
        code, err = run_main(sample.main, ["--ckpt", str(ckpt), "--output", str(tmp_path / "out"), "--device", "cpu",
                                           "--prompt", "x"], capsys)
        assert code == 1 and err.count("\n") == 1 and err.startswith(f"ERROR {ckpt}: ") and reason in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_export_cli_refuses_a_crafted_pickle_in_one_line(crafted, tmp_path, capsys):
    from saga_hsmad.cli.export import main

    path, marker = crafted
    code, err = run_main(main, ["--ckpt", str(path), "--output", str(tmp_path / "m.safetensors")], capsys)
    assert code == 1 and err.count("\n") == 1 and "--trust-checkpoint" in err and not marker.exists()
    code, _ = run_main(main, ["--ckpt", str(path), "--output", str(tmp_path / "m.safetensors"),
                              "--trust-checkpoint"], capsys)
    assert code == 0 and read_checkpoint(tmp_path / "m.safetensors")[2] == "inference"


@pytest.mark.parametrize("flag", ["--pretrained-ckpt-path", "--ckpt-path"])
def test_train_py_refuses_a_crafted_pickle_in_one_line(crafted, noise_folder, tmp_path, capsys, flag):
    path, marker = crafted
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps({"dataset_type": "audio_folder", "roots": str(noise_folder)}))
    code, err = run_main(load_train_script().main, [
        "--model-config", str(REPO / "model_configs/generate/tiny.json"), "--dataset-config", str(dataset),
        "--save-dir", str(tmp_path), "--batch-size", "2", "--num-workers", "0", "--accelerator", "cpu",
        "--max-steps", "1", flag, str(path)], capsys)
    assert code == 1 and not marker.exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"ERROR {path}: loading it needs full unpickling") and "--trust-checkpoint" in last
    assert not (tmp_path / "run" / "export.safetensors").exists()


# -- item 2: integrity --------------------------------------------------------------------------------------------
def test_flipped_bytes_in_a_weight_tensor_are_refused(runs, tmp_path):
    for kind, run in runs.items():
        damaged = tmp_path / kind / "step=2.ckpt"
        damaged.parent.mkdir()
        shutil.copy(run / "checkpoints" / "step=2.ckpt", damaged)
        read_checkpoint(damaged)  # intact copy loads
        flip_bytes_in_largest_tensor(damaged)
        for load in (read_checkpoint, load_model, SafeCheckpointIO().load_checkpoint):
            with pytest.raises(CheckpointError, match=rf"^{re.escape(str(damaged))}: damaged: record .* CRC-32"):
                load(damaged)


def test_a_changed_tensor_in_an_exported_model_is_refused(runs, tmp_path):
    exported = runs["hsmad"] / "export.safetensors"
    model, config, info = load_model(exported)
    assert info["ema"] is True
    damaged = tmp_path / "export.safetensors"
    shutil.copy(exported, damaged)
    with open(damaged, "r+b") as f:
        f.seek(-4096, os.SEEK_END)  # inside the last tensor's bytes
        data = f.read(64)
        f.seek(-4096, os.SEEK_END)
        f.write(bytes(b ^ 0xFF for b in data))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(damaged))}: damaged: .*sha256"):
        load_model(damaged)


def test_inference_files_written_before_safetensors_still_load(tmp_path):
    config = tiny_model_config()
    model = saga_hsmad.create_model_from_config(config)
    save_inference_checkpoint(tmp_path / "model.ckpt", model.state_dict(), config, ema=True)
    loaded, _, info = load_model(tmp_path / "model.ckpt")
    assert info == {"kind": "inference", "ema": True}


def test_no_ema_on_an_export_of_ema_weights_says_it_has_no_effect(tmp_path, capsys):
    config = tiny_model_config()
    model = saga_hsmad.create_model_from_config(config)
    save_inference_checkpoint(tmp_path / "ema.ckpt", model.state_dict(), config, ema=True)
    save_inference_checkpoint(tmp_path / "online.ckpt", model.state_dict(), config, ema=False)
    load_model(tmp_path / "ema.ckpt", use_ema=False)
    assert "--no-ema has no effect" in capsys.readouterr().err
    load_model(tmp_path / "ema.ckpt")
    load_model(tmp_path / "online.ckpt", use_ema=False)
    assert "--no-ema" not in capsys.readouterr().err


# -- item 3: atomic saves, truncated files ------------------------------------------------------------------------
KILLED_DURING_SAVE = """
import resource, signal, sys, torch
from saga_hsmad.training.checkpoint_io import SafeCheckpointIO
io = SafeCheckpointIO()
io.save_checkpoint({"global_step": 1, "w": torch.zeros(1000)}, sys.argv[1])
size = __import__("os").path.getsize(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, size + 4096))
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; by default it kills, like kill -9, mid-write
io.save_checkpoint({"global_step": 2, "w": torch.zeros(1_000_000)}, sys.argv[1])
"""


def test_a_save_killed_part_way_leaves_the_previous_checkpoint_whole(tmp_path):
    last = tmp_path / "last.ckpt"
    proc = subprocess.run([sys.executable, "-c", KILLED_DURING_SAVE, str(last)], cwd=str(REPO), capture_output=True)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr.decode()[-2000:]
    assert SafeCheckpointIO().load_checkpoint(last)["global_step"] == 1
    stale = list(tmp_path.glob(".last.ckpt.*.part"))
    assert len(stale) == 1
    assert remove_stale_temporaries(tmp_path) == stale and not stale[0].exists() and last.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_resume_from_a_truncated_checkpoint_names_it_and_the_newest_good_one(runs, tmp_path, capsys, damage,
                                                                             demo_corpus, monkeypatch):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for name in ("step=1.ckpt", "step=2.ckpt", "last.ckpt"):  # copy2 keeps the write order (mtimes)
        shutil.copy2(runs["saga_sr"] / "checkpoints" / name, folder / name)
    last = folder / "last.ckpt"
    with open(last, "r+b") as f:
        f.truncate(0 if damage == "empty" else last.stat().st_size // 2)
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(demo_corpus))
    code, err = run_main(load_train_script().main,
                         train_args("saga_sr", tmp_path, "again", "--max-steps", "3", "--ckpt-path", str(last)), capsys)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"ERROR {last}: ") and ("truncated" in line or "empty" in line)
    assert line.endswith(f"the newest intact checkpoint beside it is {folder / 'step=2.ckpt'}")
    assert not (tmp_path / "again").exists()


# -- item 8: permissions ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_umask_permissions(tmp_path, mask, mode):
    config = tiny_model_config()
    model = saga_hsmad.create_model_from_config(config)
    with umask(mask):
        atomic_write(tmp_path / "a.txt", lambda tmp: Path(tmp).write_text("x"))
        save_inference_checkpoint(tmp_path / "export.safetensors", model.state_dict(), config, ema=False)
        SafeCheckpointIO().save_checkpoint({"global_step": 0}, tmp_path / "last.ckpt")
    for name in ("a.txt", "export.safetensors", "last.ckpt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# -- item 4: interrupts -------------------------------------------------------------------------------------------
def train_until(kind: str | tuple[Path, str], save_dir: Path, name: str, env: dict, checkpoint: str, sig: int | None,
                group: bool = False, workers: int = 0) -> subprocess.CompletedProcess:
    """Starts train.py for many steps, waits for ``checkpoint`` to appear, then sends ``sig`` (to the whole
    process group, like a terminal's Ctrl-C, when ``group``) or SIGKILL."""
    args = train_args(kind, save_dir, name, "--max-steps", "10000", "--checkpoint-every", "2")
    args[args.index("--num-workers") + 1] = str(workers)
    # SIGINT as in a terminal: not ignored (a shell starts background jobs with SIGINT ignored)
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=str(REPO),
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not (save_dir / name / "checkpoints" / checkpoint).exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "training made no checkpoint in time"
            time.sleep(0.2)
        time.sleep(1.0)  # a few more steps
        (os.killpg if group else os.kill)(proc.pid, sig or signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the signal was not honoured: do not leave it writing checkpoints
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("sig, status, group, workers", [
    (signal.SIGINT, 130, True, 2),  # Ctrl-C in a terminal reaches the loader workers too
    (signal.SIGTERM, 143, False, 0),  # kill, a scheduler's time limit
])
def test_interrupted_training_saves_a_resumable_checkpoint_and_no_export(demo_corpus, tmp_path, sig, status, group,
                                                                         workers):
    env = {"SAGA_HSMAD_DEMO_CORPUS": str(demo_corpus), "OMP_NUM_THREADS": "1"}
    stale = tmp_path / "run" / "checkpoints" / ".last.ckpt.x1y2z3.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed save")
    proc = train_until("saga_sr", tmp_path, "run", env, "step=2.ckpt", sig, group=group, workers=workers)
    assert proc.returncode == status, proc.stderr[-3000:]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    line = proc.stderr.strip().splitlines()[-1]
    found = re.fullmatch(r"interrupted by (SIGINT|SIGTERM) at step (\d+): resumable checkpoint (\S+); "
                         r"resume with --ckpt-path (\S+)", line)
    assert found and found.group(1) == signal.Signals(sig).name and found.group(3) == found.group(4) == str(last), line
    assert "Traceback" not in proc.stderr
    step = int(found.group(2))
    assert step >= 2 and read_checkpoint(last)[0] and torch.load(last, weights_only=True)["global_step"] == step
    assert not (tmp_path / "run" / "export.safetensors").exists() and not (tmp_path / "run" / "export.ckpt").exists()
    assert not stale.exists()


def test_resume_after_kill_9_restores_step_optimizer_schedule_and_both_emas(demo_corpus, tmp_path, monkeypatch):
    """Tiny SAGA-SR with EMA on: the backbone's EMA and the conditioners' (roll-off embedders), AdamW, InverseLR."""
    config = json.loads((REPO / CONFIGS["saga_sr"][0]).read_text())
    config["training"]["use_ema"] = True
    (tmp_path / "model.json").write_text(json.dumps(config))
    kind = (tmp_path / "model.json", CONFIGS["saga_sr"][1])
    env = {"SAGA_HSMAD_DEMO_CORPUS": str(demo_corpus), "OMP_NUM_THREADS": "1"}
    proc = train_until(kind, tmp_path, "run", env, "step=4.ckpt", None)
    assert proc.returncode == -signal.SIGKILL
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    verify_checkpoint(last)  # whole: the kill may land in its save, which leaves the previous one in place
    saved = torch.load(last, map_location="cpu", weights_only=True)
    step = saved["global_step"]
    assert step >= 2

    restored = {}
    create = saga_hsmad.create_training_wrapper_from_config

    def recording_wrapper(*args, **kwargs):
        wrapper = create(*args, **kwargs)
        training_step = wrapper.training_step

        def first_step(batch, batch_idx):
            if not restored:
                assert wrapper.diffusion_ema is not None and wrapper.conditioner_ema is not None
                restored.update(step=wrapper.global_step,  # copies: the step below changes them in place
                                optimizer=copy.deepcopy(wrapper.optimizers().optimizer.state_dict()),
                                schedule=copy.deepcopy(wrapper.lr_schedulers().state_dict()),
                                ema={f"diffusion_ema.{k}": v.clone()
                                     for k, v in wrapper.diffusion_ema.state_dict().items()},
                                conditioner_ema={f"conditioner_ema.{k}": v.clone()
                                                 for k, v in wrapper.conditioner_ema.state_dict().items()})
            return training_step(batch, batch_idx)

        wrapper.training_step = first_step
        return wrapper

    monkeypatch.setattr(saga_hsmad, "create_training_wrapper_from_config", recording_wrapper)
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(demo_corpus))
    assert load_train_script().main(train_args(kind, tmp_path, "run", "--max-steps", str(step + 1),
                                               "--ckpt-path", str(last), "--no-export")) == 0
    assert restored["step"] == step
    assert restored["schedule"]["last_epoch"] == saved["lr_schedulers"][0]["last_epoch"] == step
    for name, state in saved["optimizer_states"][0]["state"].items():
        for key, value in state.items():
            assert torch.equal(restored["optimizer"]["state"][name][key], value), (name, key)
    for ema in ("ema", "conditioner_ema"):
        assert restored[ema], ema
        for key, value in restored[ema].items():
            assert torch.equal(value, saved["state_dict"][key]), key
