#!/usr/bin/env bash
# The main job on the embedded default: convert Panoptic-DeepLab (our Cityscapes R-52 config, seeded
# random weights) for blackhole-20, run the generated TTNN module on the host emulator (or a TT device
# when one is attached), check it against Detectron2 and print the report. Output goes to out/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/pdl-convert --out out --verify "$@"
