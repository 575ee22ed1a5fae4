"""Every command README.md shows runs (issue 13, item 11).

The commands are read from README.md: the lines of its bash blocks (continuations joined, comments dropped)
and its inline code, where they call ``sample.py``, ``train.py`` or ``python -m saga_hsmad...``. Each block runs
top to bottom in one empty working directory, so the quick start's training writes the checkpoint its export
reads. A file a command reads that no earlier command of its block wrote is a tiny stand-in under the same name
(random-weight checkpoints of the right kind, a short WAV, a MIDI file, the tiny configs for placeholders such
as ``M``), and a few flags appended per program make the run tiny (argparse keeps a flag's last value):
``TINY_RUN``. Each command must exit 0 and leave what it promises (``PRODUCTS``).

Commands that cannot run here are listed in ``NOT_RUN`` with the reason; most are parsed by their own parser or
run with ``--help`` instead. A README command that is neither run nor listed fails the test, and so does a listed
one the README no longer has.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
import typing as tp
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, load_json

SCRIPTS = ("sample.py", "train.py")
MODEL_FOR = {"super_resolution": "model_configs/saga_sr/tiny.json", "midi": "model_configs/hsmad/tiny.json",
             "generate": "model_configs/generate/tiny.json"}
PLACEHOLDERS = {  # README placeholder → the repository file that stands in for it
    "M": "model_configs/saga_sr/tiny.json", "MODEL_CONFIG": "model_configs/saga_sr/tiny.json",
    "D": "dataset_configs/saga_sr/demo.json", "DATASET_CONFIG": "dataset_configs/saga_sr/demo.json",
}
TINY_RUN = {  # program → flags appended to make the README's run tiny
    "sample.py": ["--steps", "2", "--device", "cpu"],
    "train.py": ["--max-steps", "1", "--num-workers", "0"],
    "saga_hsmad.cli.latent_stats": ["--windows", "4"],
    "saga_hsmad.data.demo_corpus": ["--out", "corpus", "--num-pieces", "2", "--seconds", "2", "--quiet"],
}
NOT_RUN = {  # README command → (what is checked instead: "parse", "help" or None, why it is not run here)
    "python -m saga_hsmad.cli.export": (
        "help", "names the command in a sentence (no flags); the README's two export commands with flags are run"),
    "python -m saga_hsmad.demo --task midi": (
        "parse", "trains HS-MAD for about 20 minutes; tests/test_demo_midi.py checks the dispatch and the table"),
    "python -m saga_hsmad.app --ckpt runs/sr/export.safetensors --ckpt runs/hsmad/export.safetensors "
    "[--host 127.0.0.1] [--port 7860] [--device cpu] [--train-dataset-config dataset_configs/saga_sr/demo.json]": (
        "parse", "serves a web page until Ctrl-C; tests/test_app_server.py starts the server"),
    "python -m saga_hsmad.cli.sat SCRIPT ARGS...": (None, "a synopsis: SCRIPT is any stable-audio-tools script"),
    "PL_TRAINER_MAX_STEPS=500 python -m saga_hsmad.cli.sat train.py --model-config "
    "~/saga-hsmad/model_configs/hsmad/tiny.json --dataset-config ~/saga-hsmad/dataset_configs/hsmad/demo.json "
    "--save-dir runs --logger none --precision 32": (
        None, "runs stable-audio-tools' own train.py from its checkout, which hard-codes accelerator='gpu' (needs "
               "a GPU); tests/test_sat_scripts.py runs a copy with only that line changed"),
}


# -- reading README.md ----------------------------------------------------------------------------------------
class Command(tp.NamedTuple):
    text: str  # as README.md writes it, whitespace collapsed
    program: str  # sample.py, train.py or the module of python -m
    argv: list[str]  # the program's arguments


def parse_command(text: str) -> Command | None:
    """``[VAR=value ...] python sample.py|train.py|-m saga_hsmad... ARGS``, else None. Environment assignments
    are dropped; a synopsis' optional ``[--flag value]`` counts as given."""
    tokens = shlex.split(re.sub(r"\[(--[^\]]*)\]", r"\1", text))
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        tokens.pop(0)
    if len(tokens) < 2 or tokens[0] != "python":
        return None
    if tokens[1] in SCRIPTS:
        return Command(text, tokens[1], tokens[2:])
    if tokens[1] == "-m" and len(tokens) > 2 and tokens[2].startswith("saga_hsmad"):
        return Command(text, tokens[2], tokens[3:])
    return None


def readme_blocks() -> list[list[Command]]:
    """The commands of README.md: one list per bash block (in order), then one per inline command."""
    text = (REPO / "README.md").read_text()
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines = (re.sub(r"(^|\s)#.*", "", line).strip() for line in block.replace("\\\n", " ").splitlines())
        commands = [c for c in map(parse_command, (" ".join(line.split()) for line in lines if line)) if c]
        if commands:
            blocks.append(commands)
    outside_blocks = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`(python [^`]+)`", outside_blocks):
        if (command := parse_command(" ".join(span.split()))) is not None:
            blocks.append([command])
    return blocks


def readme_commands() -> list[Command]:
    return [c for block in readme_blocks() for c in block]


# -- running one command -------------------------------------------------------------------------------------
def value_of(argv: list[str], flag: str) -> str | None:
    """The last value given to ``flag`` (``--flag v`` or ``--flag=v``)."""
    found = None
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif token.startswith(flag + "="):
            found = token.split("=", 1)[1]
    return found


def sample_kind(argv: list[str]) -> str:
    return "super_resolution" if "--input" in argv else "midi" if "--midi" in argv else "generate"


def save_tiny_model(path: Path, config: dict, training: bool = False) -> None:
    """Random weights of ``config``: an exported checkpoint, or with ``training`` a training checkpoint (a torch
    file with the wrapper's ``diffusion.`` keys and the config) as train.py's checkpoints hold."""
    import saga_hsmad
    from saga_hsmad.checkpoints import save_inference_checkpoint

    torch.manual_seed(0)
    state = saga_hsmad.create_model_from_config(config).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    if training:
        torch.save({"state_dict": {f"diffusion.{k}": v for k, v in state.items()}, "model_config": config}, path)
    else:
        save_inference_checkpoint(path, state, config, ema=False)


def write_wav_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(4800) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(folder / "a.wav", audio.astype(np.float32), 16000, subtype="FLOAT")


def write_midi(path: Path) -> None:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(90, 60 + i, 0.25 * i, 0.25 * i + 0.2) for i in range(4)]
    pm.instruments.append(piano)
    pm.write(str(path))


def stand_ins(command: Command, written: set[Path]) -> list[str]:
    """Write the stand-ins of the files ``command`` reads (in the working directory) unless an earlier command of
    its block wrote them; the arguments with placeholders and repository files made absolute."""
    argv = [str(REPO / PLACEHOLDERS.get(a, a)) if (REPO / PLACEHOLDERS.get(a, a)).is_file() and not Path(a).exists()
            else a for a in command.argv]
    needed = []
    if command.program == "sample.py":
        kind = sample_kind(argv)
        needed.append((value_of(argv, "--ckpt"), lambda p: save_tiny_model(p, load_json(REPO / MODEL_FOR[kind]))))
        needed.append((value_of(argv, "--input"), write_wav_folder))
        needed.append((value_of(argv, "--midi"), write_midi))
    elif command.program == "saga_hsmad.cli.export":
        needed.append((value_of(argv, "--ckpt"),
                       lambda p: save_tiny_model(p, load_json(REPO / MODEL_FOR["super_resolution"]), training=True)))
    for name, write in needed:
        if name is not None and Path(name).resolve() not in written:
            write(Path(name))
    return argv


def main_of(program: str) -> tp.Callable[[list[str]], int]:
    if program in SCRIPTS:
        spec = importlib.util.spec_from_file_location(program.removesuffix(".py") + "_script", REPO / program)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main
    module = importlib.import_module(program)
    if hasattr(module, "__path__"):  # python -m PACKAGE runs PACKAGE.__main__
        module = importlib.import_module(f"{program}.__main__")
    return module.main


def exit_status(main: tp.Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # --help, and argparse's errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


# -- what each program leaves --------------------------------------------------------------------------------
def sample_products(argv: list[str], out: str) -> None:
    if "--help" in argv:
        assert f"sample.py runs it in the {sample_kind(argv)} mode" in out, out[:500]
    else:
        assert list(Path(value_of(argv, "--output")).rglob("*.wav")), "no WAV written"


def train_products(argv: list[str], out: str) -> None:
    run = Path(value_of(argv, "--save-dir") or "runs") / (value_of(argv, "--name") or "run")
    assert (run / "checkpoints" / "last.ckpt").is_file(), list(run.rglob("*"))
    assert (run / "export.safetensors").is_file(), list(run.rglob("*"))


def export_products(argv: list[str], out: str) -> None:
    from saga_hsmad.checkpoints import read_checkpoint

    state, config, kind = read_checkpoint(value_of(argv, "--output"))
    assert kind == "inference" and config is not None and state


def config_check_products(argv: list[str], out: str) -> None:
    if "--describe" in argv:
        assert "dit_concat" in out and "mrci_unet" in out
    else:
        assert out.count(": ok (") == len(argv), out


def latent_stats_products(argv: list[str], out: str) -> None:
    band_std = load_json(Path(value_of(argv, "--output")))["model"]["pretransform"]["config"]["band_std"]
    assert len(band_std) > 1 and all(v > 0 for v in band_std)


def demo_corpus_products(argv: list[str], out: str) -> None:
    manifest = load_json(Path(value_of(argv, "--out")) / "manifest.json")
    assert manifest["counts"]["total"] == 2


PRODUCTS = {
    "sample.py": sample_products,
    "train.py": train_products,
    "saga_hsmad.cli.export": export_products,
    "saga_hsmad.config_check": config_check_products,
    "saga_hsmad.cli.latent_stats": latent_stats_products,
    "saga_hsmad.data.demo_corpus": demo_corpus_products,
}


# -- the tests ------------------------------------------------------------------------------------------------
def test_every_readme_command_is_run_or_listed_as_not_run():
    commands = readme_commands()
    programs = {c.program for c in commands}
    assert {"sample.py", "train.py", "saga_hsmad.cli.export", "saga_hsmad.config_check"} <= programs, programs
    uncovered = [c.text for c in commands if c.text not in NOT_RUN and c.program not in PRODUCTS]
    assert not uncovered, f"README commands neither run nor in NOT_RUN: {uncovered}"
    stale = set(NOT_RUN) - {c.text for c in commands}
    assert not stale, f"NOT_RUN lists commands README.md no longer has: {stale}"


@pytest.mark.parametrize("block", [b for b in readme_blocks() if any(c.text not in NOT_RUN for c in b)],
                         ids=lambda b: b[0].text[7:57])
def test_readme_block_runs(block, demo_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGA_HSMAD_DEMO_CORPUS", str(demo_corpus))
    written: set[Path] = set()
    for command in block:
        if command.text in NOT_RUN:
            continue
        argv = stand_ins(command, written) + TINY_RUN.get(command.program, [])
        before = set(tmp_path.rglob("*"))
        status = exit_status(main_of(command.program), argv)
        out, err = capsys.readouterr()
        assert status == 0, f"{command.text}\nexit {status}\n{err[-2000:]}"
        PRODUCTS[command.program](argv, out)
        written |= {p.resolve() for p in set(tmp_path.rglob("*")) - before}


class Parsed(Exception):
    pass


@pytest.mark.parametrize("text", [t for t, (check, _) in NOT_RUN.items() if check == "parse"], ids=lambda t: t[7:50])
def test_readme_commands_not_run_parse(text, monkeypatch):
    """Their flags exist and take the values shown: the command's own parser runs, then the command stops."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    command = parse_command(text)
    with pytest.raises(Parsed):
        main_of(command.program)(command.argv)


@pytest.mark.parametrize("text", [t for t, (check, _) in NOT_RUN.items() if check == "help"], ids=lambda t: t[7:50])
def test_readme_commands_not_run_exist(text, capsys):
    command = parse_command(text)
    assert exit_status(main_of(command.program), command.argv + ["--help"]) == 0
    assert "usage:" in capsys.readouterr().out
