"""Where things live outside the repository, and how dataset configs name them.

Config paths may use ``~`` and environment variables. ``${SAGA_HSMAD_DEMO_CORPUS}`` defaults to the demo
corpus cache (``$SAGA_HSMAD_CACHE/demo_corpus``, else ``~/.cache/saga_hsmad/demo_corpus``), so the shipped
dataset configs work without setting anything.
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("SAGA_HSMAD_CACHE", Path.home() / ".cache" / "saga_hsmad")).expanduser()


def demo_corpus_dir() -> Path:
    explicit = os.environ.get("SAGA_HSMAD_DEMO_CORPUS")
    return Path(explicit).expanduser() if explicit else cache_dir() / "demo_corpus"


DEFAULTS = {"SAGA_HSMAD_DEMO_CORPUS": lambda: str(demo_corpus_dir()), "SAGA_HSMAD_CACHE": lambda: str(cache_dir())}


def resolve_path(value: str, where: str = "path") -> Path:
    """Expand ``~`` and ``$VAR``/``${VAR}``; our variables have defaults, any other unset one is an error."""
    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in os.environ:
            return os.environ[name]
        if name in DEFAULTS:
            return DEFAULTS[name]()
        raise KeyError(f"{where}: environment variable {name} in {value!r} is not set")

    return Path(re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, str(value))).expanduser()
