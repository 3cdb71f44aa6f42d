"""Files and folders that appear whole or not at all.

A run can be killed at any instant (SIGKILL, a full disk, a power cut). Every
file the engine writes goes to a temporary name beside its target and is
renamed into place, so a reader finds the old version or the new one, never
half of one. Folders (a saved student, a copied teacher cache) are built under
a temporary name and renamed the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    temporary = _temporary(path)
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """`with replacing(target) as temporary:` write `temporary`; it becomes `target` only if the block finishes."""
    path = Path(path)
    temporary = _temporary(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


@contextmanager
def building_folder(folder: Path) -> Iterator[Path]:
    """`with building_folder(target) as temporary:` fill `temporary`; it replaces `target` only if the block finishes."""
    folder = Path(folder)
    temporary = _temporary(folder)
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        yield temporary
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
