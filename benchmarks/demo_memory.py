"""Peak memory of `pdl-demo` on large photos, measured (the child's peak RSS), not modeled.

    .venv/bin/python benchmarks/demo_memory.py [--count 6] [--photo 4000x6000] [--format jpeg|png]

Writes `--count` synthetic street photos of `--photo` HxW pixels and a seeded checkpoint, then runs
`pdl-demo DIR WEIGHTS.pkl OUT --pytorch-only --input-size 128x256` on one photo and on all of them,
each in its own process, and prints each run's peak resident memory (from wait4). What the
images cost is the difference between the runs: with every photo decoded at once it grows with
`--count`; decoded one at a time it does not.

This process only launches: Linux counts a parent's resident memory at fork in its child's peak, so
the photos and the checkpoint are made by a child of their own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def prepare(directory: Path, count: int, height: int, width: int, fmt: str) -> None:
    from converter.checkpoint import write_random_checkpoint
    from converter.model import load_config
    from runtime.scenes import street_scene

    for name in ("one", "many"):
        (directory / name).mkdir()
    for i in range(count):
        path = directory / "many" / f"photo_{i}.{fmt}"
        street_scene(width, height, seed=i).save(path, format=fmt.upper())
        if i == 0:
            (directory / "one" / path.name).write_bytes(path.read_bytes())
    write_random_checkpoint(load_config(), directory / "weights.pkl")


def peak_rss_mb(args: list[str]) -> float:
    """Run `python -m runtime.demo *args` and return its peak RSS in MB."""
    child = subprocess.Popen(
        [sys.executable, "-m", "runtime.demo", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"pdl-demo failed: {child.stderr.read().decode() if child.stderr else ''}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=6)
    p.add_argument("--photo", default="4000x6000", help="HxW of each photo")
    p.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    p.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # the child's job: write the inputs there
    a = p.parse_args()
    height, width = (int(v) for v in a.photo.split("x"))
    if a.prepare:
        prepare(a.prepare, a.count, height, width, a.format)
        return
    with tempfile.TemporaryDirectory(prefix="demo-memory-") as tmp:
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--prepare", tmp], check=True)
        size_mb = (Path(tmp) / "one" / f"photo_0.{a.format}").stat().st_size / 1e6
        rss = {
            d: peak_rss_mb(
                [
                    str(Path(tmp) / d),
                    str(Path(tmp) / "weights.pkl"),
                    str(Path(tmp) / f"out-{d}"),
                    "--pytorch-only",
                    "--input-size",
                    "128x256",
                ]
            )
            for d in ("one", "many")
        }
    print(
        f"{a.count} {a.format} photos of {height}x{width} ({size_mb:.1f} MB each on disk): peak RSS "
        f"{rss['one']:.0f} MB with 1 photo, {rss['many']:.0f} MB with {a.count} "
        f"({rss['many'] - rss['one']:+.0f} MB)"
    )


if __name__ == "__main__":
    main()
