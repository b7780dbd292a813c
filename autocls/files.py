"""Small-file I/O shared by every module: atomic writes and a YAML reader whose failures are one line.

Atomic means written to a temporary file in the same folder and renamed over
the target, so a reader (or a run killed mid-write) sees the old file or the
new one, never half of one.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from autocls.errors import UserError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    tmp.replace(path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def load_yaml(text: str, source: str):
    """``yaml.safe_load`` with its failures (syntax, nesting too deep for Python) as one UserError line.

    Example:
        >>> load_yaml("epochs: 3", "recipe.yaml")
        {'epochs': 3}
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply to read") from None
