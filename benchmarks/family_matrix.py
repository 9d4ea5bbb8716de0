"""Benchmark: the model family at its native sizes (and the released config at 1024x2048 on every
single-chip target): `pdl-convert --ttnn-check --verify` per member, with seeded weights (seed 0).
Prints per row real ttnn's verdict, PCC per head against Detectron2 fp32 on the emulator, the modeled
latency (passes/cost_model.py) and the L1 peak per core the plan reaches; writes
benchmarks/family_matrix.json. About 25 minutes on 2 cores.

    .venv/bin/python benchmarks/family_matrix.py [--rows NAME ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from converter.atomic import write_text

HERE = Path(__file__).parent
CITYSCAPES = "panoptic_deeplab_R_52_os16_mg124_cityscapes"
# row name -> (config, variant, target, input size or None for the config's own)
ROWS = {
    "pdl-cityscapes": (CITYSCAPES, "panoptic_deeplab", "blackhole-20", None),
    "pdl-coco": ("panoptic_deeplab_R_52_os16_mg124_dsconv_coco", "panoptic_deeplab", "blackhole-20", None),
    "deeplab-v3": ("deeplab_v3_R_103_os16_mg124_cityscapes", "deeplab_v3", "blackhole-20", None),
    "deeplab-v3-plus": ("deeplab_v3_plus_R_103_os16_mg124_cityscapes", "deeplab_v3_plus", "blackhole-20", None),
    **{
        f"pdl-cityscapes-1024x2048-{t}": (CITYSCAPES, "panoptic_deeplab", t, "1024x2048")
        for t in ("blackhole-20", "blackhole-p150", "wormhole-n150")
    },
}


def run_row(config: str, variant: str, target: str, size: str | None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = ["--config", config, "--variant", variant, "--target", target, "--ttnn-check", "--verify", "--out", out]
        proc = subprocess.run(
            [sys.executable, "-m", "compiler.cli", *args, *(["--input-size", size] if size else [])],
            capture_output=True,
            text=True,
            timeout=3600,
        )
    text = proc.stdout
    row: dict = {"config": config, "variant": variant, "target": target, "exit": proc.returncode}
    if m := re.search(r" at (\d+x\d+) \(config", text):
        row["input"] = m.group(1)
    row["real_ttnn"] = "accepted" if "real ttnn: accepted" in text else "rejected"
    if m := re.search(r"modeled latency\s+([\d.]+) ms", text):
        row["modeled_ms"] = float(m.group(1))
    if m := re.search(r"L1 peak per core\s+(\d+) B", text):
        row["l1_peak_per_core"] = int(m.group(1))
    if m := re.search(r"verify \S+ on the \w+: (.+) \(floor", text):
        row["pcc"] = {head: float(v) for head, v in re.findall(r"(\w+) PCC ([\d.]+)", m.group(1))}
    if proc.returncode != 0 or "pcc" not in row:
        row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--json", type=Path, default=HERE / "family_matrix.json")
    args = ap.parse_args(argv)
    results = {}
    print(f"{'row':40s} {'input':>9s} {'real ttnn':>9s} {'modeled ms':>10s} {'L1 peak':>9s}  PCC per head")
    for name in args.rows:
        r = results[name] = run_row(*ROWS[name])
        pcc = " ".join(f"{h} {v:.4f}" for h, v in r.get("pcc", {}).items()) or r.get("error", "")
        print(
            f"{name:40s} {r.get('input', '?'):>9s} {r['real_ttnn']:>9s} {r.get('modeled_ms', 0):10.2f} "
            f"{r.get('l1_peak_per_core', 0):9d}  {pcc}",
            flush=True,
        )
    write_text(args.json, json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
