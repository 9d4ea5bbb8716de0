"""Replacing a set of files all or nothing: processes really killed at every step, faults injected."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from converter import atomic
from converter.errors import UserError

OLD = {"a.py": b"old a", "b.md": b"old b", "c.png": b"old c"}
NEW = {"a.py": b"new a" * 1000, "b.md": b"new b", "c.png": b"new c", "d.png": b"new d"}
UNRELATED = {"keep.txt": b"not ours"}

# Runs replace_files(NEW) in a child that SIGKILLs itself just before its N-th file-system call that
# changes or syncs something (open, fsync, replace, unlink): a crash at every point of the protocol.
_KILLED_AT = f"""
import os, signal, sys
from pathlib import Path
from converter import atomic

os.umask(0o022)
kill_at, calls = int(sys.argv[2]), [0]

def fatal(call):
    def wrapped(*args, **kwargs):
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        calls[0] += 1
        return call(*args, **kwargs)
    return wrapped

for name in ("open", "fsync", "replace", "unlink"):
    setattr(os, name, fatal(getattr(os, name)))
atomic.replace_files(Path(sys.argv[1]), {NEW!r})
"""


def _visible(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if not p.name.startswith(".")}


def _populate(directory: Path) -> None:
    directory.mkdir()
    for name, data in {**OLD, **UNRELATED}.items():
        (directory / name).write_bytes(data)


def test_killed_at_any_step_the_set_is_all_old_or_all_new(tmp_path):
    old, new = {**OLD, **UNRELATED}, {**NEW, **UNRELATED}
    outcomes = []
    for step in range(200):
        directory = tmp_path / f"kill{step}"
        _populate(directory)
        child = subprocess.run([sys.executable, "-c", _KILLED_AT, str(directory), str(step)], capture_output=True)
        if child.returncode == 0:  # finished before its `step`-th call: every step has been tried
            assert _visible(directory) == new and not [p for p in directory.iterdir() if p.name.startswith(".")]
            assert all((directory / n).stat().st_mode & 0o777 == 0o644 for n in NEW)  # as open() makes them
            break
        assert child.returncode == -9, child.stderr.decode()
        # Before recovery: the old set untouched, or the new one complete, or committed (journal) midway.
        seen = _visible(directory)
        assert seen in (old, new) or atomic.interrupted(directory), (step, seen)
        atomic.replace_files(directory, {})  # the next run's recovery, with nothing new to write
        after = _visible(directory)
        assert after in (old, new), (step, after)
        assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]  # nothing staged left
        outcomes.append((seen == old, after == new))
    else:
        pytest.fail("replace_files never completed")
    assert len(outcomes) > 20
    assert (False, True) in outcomes  # some kills fell between the commit and the last rename ...
    assert outcomes[0] == (True, False) and outcomes[-1][1]  # ... the first ones kept the old set


@pytest.mark.parametrize("failing_fsync", range(6))
def test_disk_full_while_staging_leaves_the_old_set_and_nothing_else(tmp_path, monkeypatch, failing_fsync):
    directory = tmp_path / "out"
    _populate(directory)
    calls = []
    real_fsync = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == failing_fsync + 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left on device"):
        atomic.replace_files(directory, NEW)
    assert sorted(p.name for p in directory.iterdir()) == sorted({**OLD, **UNRELATED})
    assert _visible(directory) == {**OLD, **UNRELATED}


def test_a_locked_directory_is_refused_not_interleaved(tmp_path):
    directory = tmp_path / "out"
    _populate(directory)
    with atomic.locked(directory, exclusive=True):
        with pytest.raises(UserError, match=f"another process is writing to {directory}; wait for it"):
            atomic.replace_files(directory, NEW)
        with pytest.raises(UserError, match="another process is writing"), atomic.locked(directory, exclusive=False):
            pass
    with (
        atomic.locked(directory, exclusive=False),
        atomic.locked(directory, exclusive=False),  # readers share
        pytest.raises(UserError, match="another process is writing"),
    ):
        atomic.replace_files(directory, NEW)
    atomic.replace_files(directory, NEW)  # released
    assert _visible(directory) == {**NEW, **UNRELATED}


def test_the_lock_holds_across_processes(tmp_path):
    directory = tmp_path / "out"
    _populate(directory)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, fcntl, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            str(directory),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(UserError, match="another process is writing"):
            atomic.replace_files(directory, NEW)
    finally:
        holder.communicate("")
    atomic.replace_files(directory, NEW)
    assert _visible(directory) == {**NEW, **UNRELATED}


def test_a_journal_naming_a_path_outside_the_directory_is_refused(tmp_path):
    directory = tmp_path / "out"
    _populate(directory)
    (directory / atomic.JOURNAL).write_text('["../victim"]')
    with pytest.raises(UserError, match=r"names '\.\./victim', not a file of"):
        atomic.replace_files(directory, NEW)
    assert _visible(directory) == {**OLD, **UNRELATED}


_WRITER = """
import sys
from pathlib import Path
from converter import atomic
from converter.errors import UserError

tag = sys.argv[2]
try:
    for _ in range(20):
        files = {name: f"{tag} {name}".encode() * 5000 for name in ("a.py", "b.md", "c.png")}
        atomic.replace_files(Path(sys.argv[1]), files)
except UserError as e:
    print(e)
    sys.exit(2)
"""


def test_two_concurrent_writers_leave_one_complete_set(tmp_path):
    directory = tmp_path / "out"
    _populate(directory)
    for _ in range(5):
        writers = [
            subprocess.Popen([sys.executable, "-c", _WRITER, str(directory), tag], stdout=subprocess.PIPE, text=True)
            for tag in ("first", "second")
        ]
        codes = [(w.wait(), w.stdout.read()) for w in writers]
        assert all(code == 0 or (code == 2 and "another process is writing" in text) for code, text in codes), codes
        assert any(code == 0 for code, _ in codes)
        seen = _visible(directory)
        tags = {data.split(b" ")[0] for name, data in seen.items() if name != "keep.txt"}
        assert len(tags) == 1 and seen["keep.txt"] == UNRELATED["keep.txt"], tags  # one writer's whole set
        assert not [p.name for p in directory.iterdir() if p.name.startswith(".")] and not atomic.interrupted(directory)
