"""Our entry points do not print the third-party noise every run used to start with (issue 13, item 12):
flash-attn's absence and setuptools' ``pkg_resources`` deprecation (``saga_hsmad.quiet``), while warnings we do not
know still show. The commands run in subprocesses: the noise is printed once per process, at import."""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
import textwrap
import warnings

import pytest
from conftest import REPO, write_noise_folder

NOISE = ("flash_attn", "pkg_resources", "LeafSpec")
NOISY_ENTRY_POINTS = {  # module → why it still prints the noise
    "saga_hsmad.data.demo_corpus": "its package saga_hsmad.data imports stable-audio-tools (through the dataset "
                                   "modules it registers) before the command's main runs",
}


def run(*command: str) -> tuple[int, str]:
    """(exit status, stdout + stderr) of ``python COMMAND`` run from the repository (so it imports this tree)."""
    proc = subprocess.run([sys.executable, *command], cwd=str(REPO), capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def assert_quiet(*command: str) -> str:
    status, output = run(*command)
    assert status == 0, output[-3000:]
    assert not [n for n in NOISE if n in output], output[-3000:]
    return output


def entry_point_modules() -> list[str]:
    """The modules ``python -m saga_hsmad...`` runs: those with a ``__main__`` guard."""
    paths = [p for p in (REPO / "saga_hsmad").rglob("*.py") if 'if __name__ == "__main__"' in p.read_text()]
    names = [".".join(p.relative_to(REPO).with_suffix("").parts) for p in paths]
    return sorted(n.removesuffix(".__main__") for n in names)


def test_the_noise_is_there_without_silencing():
    """The check below would pass vacuously if this environment did not print the noise at all."""
    status, output = run("-c", "import stable_audio_tools.models.transformer, clip")
    assert status == 0 and "flash_attn not installed" in output and "pkg_resources is deprecated" in output, output


def test_sample_py_and_train_py_do_not_print_known_third_party_noise(tmp_path):
    from saga_hsmad.checkpoints import save_inference_checkpoint

    import saga_hsmad

    config = json.loads((REPO / "model_configs/saga_sr/tiny.json").read_text())
    ckpt = tmp_path / "sr.safetensors"
    save_inference_checkpoint(ckpt, saga_hsmad.create_model_from_config(config).state_dict(), config, ema=False)
    assert "runs it in the super_resolution mode" in assert_quiet("sample.py", "--ckpt", str(ckpt), "--help")
    assert "--model-config" in assert_quiet("train.py", "--help")


def silences_first(main_source: str) -> bool:
    """Whether a ``main`` imports and calls ``silence_third_party_noise`` before anything else (its docstring
    aside)."""
    body = ast.parse(textwrap.dedent(main_source)).body[0].body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    first, second = body[:2]
    return (isinstance(first, ast.ImportFrom) and [a.name for a in first.names] == ["silence_third_party_noise"]
            and isinstance(second, ast.Expr) and isinstance(second.value, ast.Call)
            and getattr(second.value.func, "id", None) == "silence_third_party_noise")


def test_every_entry_point_silences_before_it_imports():
    """Each ``python -m`` module's ``main`` (the slow test below runs them all), train.py's and sample.py's call
    ``silence_third_party_noise`` first."""
    modules = [m for m in entry_point_modules() if m not in NOISY_ENTRY_POINTS]
    assert "saga_hsmad.config_check" in modules and "saga_hsmad.app" in modules
    for name in modules:
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):  # python -m PACKAGE runs PACKAGE.__main__
            module = importlib.import_module(f"{name}.__main__")
        assert silences_first(inspect.getsource(module.main)), name
    for script in ("sample.py", "train.py"):
        tree = ast.parse((REPO / script).read_text())
        main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
        assert silences_first(ast.unparse(main)), script


def test_only_the_known_warnings_are_silenced():
    from saga_hsmad.quiet import silence_third_party_noise

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        silence_third_party_noise()
        warnings.warn("pkg_resources is deprecated as an API. See ...", UserWarning)
        warnings.warn("`torch.nn.utils.weight_norm` is deprecated in favor of ...", FutureWarning)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", DeprecationWarning)
        warnings.warn("dataset_configs/x.json: 3 files skipped", UserWarning)
        warnings.warn("something else is deprecated as an API", UserWarning)
        warnings.warn("`torch.nn.utils.weight_norm` is deprecated in favor of ...", UserWarning)  # another category
    assert [str(w.message) for w in seen] == ["dataset_configs/x.json: 3 files skipped",
                                              "something else is deprecated as an API",
                                              "`torch.nn.utils.weight_norm` is deprecated in favor of ..."]


@pytest.mark.slow
def test_a_training_run_shows_its_own_warnings_and_not_the_noise(tmp_path):
    """One training step: Lightning's LeafSpec deprecation (from fit) is gone, its advice about loader workers, a
    warning we do not silence, still shows."""
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps({"dataset_type": "super_resolution", "root": str(write_noise_folder(tmp_path / "a")),
                                   "allow_empty_captions": True}))
    output = assert_quiet("train.py", "--model-config", "model_configs/saga_sr/tiny.json", "--dataset-config",
                          str(dataset), "--accelerator", "cpu", "--max-steps", "1", "--batch-size", "1",
                          "--num-workers", "0", "--save-dir", str(tmp_path / "runs"), "--no-export")
    assert "does not have many workers" in output


@pytest.mark.slow
@pytest.mark.parametrize("module", entry_point_modules())
def test_python_m_entry_points_do_not_print_the_noise(module):
    if module in NOISY_ENTRY_POINTS:
        pytest.skip(NOISY_ENTRY_POINTS[module])
    first = assert_quiet("-m", module, "--help").splitlines()[0]  # ours: argparse's usage, or the module's doc
    assert first.startswith("usage:") or first == importlib.import_module(module).__doc__.splitlines()[0], first
