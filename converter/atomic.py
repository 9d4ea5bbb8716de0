"""Atomic file writes: a reader never sees a half-written file, and a set of files is replaced as one.

One file: it is written to a temporary file in the destination's own directory (so the final
`os.replace` is a same-filesystem rename, which POSIX makes atomic) and then renamed over it.

A set of files (`replace_files`, pdl-convert's output): renaming several files is not atomic, so the
set goes through a journal, as a database commits a transaction. Under an exclusive lock on the
directory, every new file is first written in full into the directory's private staging directory
(`.pdl2ttnn-staging/`: a name only this tool owns, so nothing of the user's is ever staged over or
deleted) and synced, and so is the journal naming the set; renaming the journal into place is the
commit point. The staged files are then renamed into place and the journal removed. A process killed
before the commit leaves only staged files, which the next call deletes (the old set stands); killed
after it, the journal lets the next call finish the renames (the new set stands). Until then readers
(`pdl-convert --check`, runtime/run.py) refuse the directory: `check_complete`.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from PIL import Image

from converter.errors import UserError

JOURNAL = ".pdl2ttnn-journal.json"
STAGING = ".pdl2ttnn-staging"


def _write_new(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Create `path` (mode 0666 less the umask, as open() gives), fill it by `write` and sync it."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _sync_directory(directory: Path) -> None:
    """Make the renames and deletions in `directory` durable (a file's fsync does not cover its name)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # unique: writers may race
    try:
        _write_new(tmp, write)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_all(f: IO[bytes], data: bytes) -> None:
    f.write(data)


def write_bytes(path: Path, data: bytes) -> None:
    _write_atomically(path, lambda f: f.write(data))


def write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    write_bytes(path, text.encode(encoding))


def save_image(path: Path, image: Image.Image, format: str, **options) -> None:
    """`image.save` with an explicit format (the temp file's suffix says nothing about it)."""
    _write_atomically(path, lambda f: image.save(f, format=format, **options))


# --- sets of files ---------------------------------------------------------------------------


@contextmanager
def locked(directory: Path, exclusive: bool) -> Iterator[None]:
    """Hold a lock on `directory` itself (no lock file to leave behind): exclusive to replace files,
    shared to read them. A UserError if another process holds it in a conflicting mode."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another process is writing to {directory}; wait for it to finish, or write to another directory"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def check_writable_directory(directory: Path, what: str) -> None:
    """UserError unless `directory` is, or can be made as, a directory this process may write in:
    checked before a run's expensive work, so a wrong path costs nothing."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{what} {directory} is a file, not a directory; pass a directory")
    existing = directory
    while not existing.exists():  # the deepest part that exists decides whether it can be created
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what} {directory} cannot be created: {existing} is a file; pass another directory")
    if not os.access(existing, os.W_OK | os.X_OK):  # also EROFS on a read-only mount, for root too
        made = "" if existing == directory else f" ({existing} is not writable)"
        raise UserError(f"{what} {directory} is not writable{made}; pass a directory you can write to")


def _staged(directory: Path, name: str) -> Path:
    return directory / STAGING / name


def journal_names(directory: Path) -> list[str]:
    """The file names a committed journal lists; a UserError with the recovery step if it is damaged."""
    journal = directory / JOURNAL
    try:
        names = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        names = e
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise UserError(
            f"{journal} is damaged (not the list of file names pdl2ttnn writes), so the interrupted update "
            f"cannot be finished; delete {journal} and {directory / STAGING}, then run pdl-convert again"
        )
    for name in names:
        if Path(name).name != name or name in ("", ".", "..", JOURNAL, STAGING):
            raise UserError(f"{journal} names {name!r}, not a file of {directory}; delete the journal")
    return names


def _recover(directory: Path) -> None:
    """With the lock held: finish a committed set, then delete what an uncommitted one staged."""
    journal = directory / JOURNAL
    if journal.exists():
        for name in journal_names(directory):
            if _staged(directory, name).exists():  # else it was renamed before the interruption
                os.replace(_staged(directory, name), directory / name)
        _sync_directory(directory)
        journal.unlink()
    staging = directory / STAGING
    if staging.is_dir() and not staging.is_symlink():
        for leftover in staging.iterdir():  # all ours: only replace_files writes in it
            leftover.unlink()
        staging.rmdir()
    _sync_directory(directory)


def interrupted(directory: Path) -> bool:
    """Whether a `replace_files` into `directory` was interrupted after its commit point."""
    return (Path(directory) / JOURNAL).exists()


def check_complete(directory: Path, what: str) -> None:
    """A UserError if `directory` holds an interrupted update: a reader would see old and new files mixed."""
    if interrupted(directory):
        journal_names(directory)  # a damaged journal: say so, and how to recover
        raise UserError(
            f"{what} {directory} holds an interrupted update (old and new files mixed): run pdl-convert "
            f"--out {directory} with the same options to finish it"
        )


def replace_files(directory: Path, files: Mapping[str, bytes]) -> None:
    """Replace `files` (name -> bytes) in `directory`, all or none of them, even if killed midway."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with locked(directory, exclusive=True):
        _recover(directory)
        # The journal is staged too, so a kill while writing it leaves nothing but staged files.
        staged = {**files, JOURNAL: json.dumps(sorted(files)).encode()}
        (directory / STAGING).mkdir()
        try:
            for name, data in staged.items():
                _write_new(_staged(directory, name), functools.partial(_write_all, data=data))
            _sync_directory(directory / STAGING)
            _sync_directory(directory)
        except BaseException:
            for name in staged:
                _staged(directory, name).unlink(missing_ok=True)
            (directory / STAGING).rmdir()
            raise
        os.replace(_staged(directory, JOURNAL), directory / JOURNAL)  # the commit point
        _sync_directory(directory)
        _recover(directory)  # the renames, as after an interruption
