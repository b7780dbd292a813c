"""Small-file I/O shared by every module: atomic writes and a YAML reader whose failures are one line.

Atomic means written to a temporary file in the same folder and renamed over
the target, so a reader (or a run killed mid-write) sees the old file or the
new one, never half of one.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from autocls.errors import UserError, short_repr


def check_folder_name(name: str, what: str) -> None:
    """A name that becomes a folder (or file) name given as ``what``: one path component of safe characters, so that
    it cannot lead out of the folder it is made in.

    Example:
        >>> check_folder_name("x/../../y", "--name")
        Traceback (most recent call last):
        ...
        autocls.errors.UserError: --name 'x/../../y' must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name or ""):
        raise UserError(f"{what} {short_repr(name)} must be 1-100 letters, digits, '.', '_' or '-', "
                        f"starting with a letter or digit")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    tmp.replace(path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_writable_file(path: str | Path, flag: str) -> None:
    """Whether a file can be written at ``path`` (given as ``flag``): its folder is made where missing; a folder
    in its place, or one this user cannot write, is one line, before the work whose result it would hold.

    Example:
        >>> check_writable_file(".", "--csv")
        Traceback (most recent call last):
        autocls.errors.UserError: --csv . is a folder; give a file name
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot make its folder ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"{flag} {path}: its folder {path.parent} is not writable")


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
