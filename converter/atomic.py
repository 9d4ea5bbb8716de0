"""Atomic file writes: a reader never sees a half-written file, even if the writer dies midway.

Each write goes to a temporary file in the destination's own directory (so the final `os.replace`
is a same-filesystem rename, which POSIX makes atomic) and is then renamed over the destination.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from PIL import Image


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    _write_atomically(path, lambda f: f.write(data))


def write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    write_bytes(path, text.encode(encoding))


def save_image(path: Path, image: Image.Image, format: str, **options) -> None:
    """`image.save` with an explicit format (the temp file's suffix says nothing about it)."""
    _write_atomically(path, lambda f: image.save(f, format=format, **options))
