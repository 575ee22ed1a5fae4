"""Run one of stable-audio-tools' own scripts with saga_hsmad's plug-ins installed.

    python -m saga_hsmad.cli.sat ~/stable-audio-tools/train.py --model-config model_configs/saga_sr/tiny.json \
        --dataset-config dataset_configs/saga_sr/demo.json --save-dir runs/sat --logger none

Everything after the script is the script's own command line. The script runs as ``python SCRIPT ...`` would
run it (``__main__``, its folder first on ``sys.path``), after ``saga_hsmad.install()``, so its factories
build our model, training wrapper, data loader and demo callback types. stable-audio-tools' ``train.py``
reads ``defaults.ini`` from the working directory, so run from its checkout (or pass ``--config-file``). Its
``--model-config`` gives the loader the pretransform ratio that HS-MAD's datasets need.

Limits of upstream's scripts that stay: ``train.py`` hard-codes ``accelerator="gpu"`` (on a CPU it stops with
"No supported gpu backend found!"; our ``train.py`` has ``--accelerator``), has no ``--max-steps`` (Lightning
reads ``PL_TRAINER_MAX_STEPS`` from the environment) and does not restore the data position on resume.
``unwrap_model.py`` loads with upstream's wrapper, which drops the EMA of the conditioners and writes no
config: export with ``python -m saga_hsmad.cli.export`` instead.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run ``argv[0]`` with the rest as its arguments; its exit status (0 when it returns)."""
    from ..quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    script, args = Path(argv[0]), argv[1:]
    if not script.is_file():
        print(f"ERROR {script}: no such script (give the path of stable-audio-tools' train.py, "
              "unwrap_model.py, ...)", file=sys.stderr)
        return 2

    import saga_hsmad
    from saga_hsmad.config_check import ConfigError
    from saga_hsmad.sat_scripts import context_from_flags, loader_context

    saga_hsmad.install()
    try:
        context = context_from_flags(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv, sys.path[:0] = [str(script), *args], [str(script.resolve().parent)]
    try:
        with loader_context(**context):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0


if __name__ == "__main__":
    sys.exit(main())
