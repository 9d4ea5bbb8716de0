#!/usr/bin/env bash
# Builds the project's environment in .venv: Python 3.12 (ttnn 0.81.1 has no cp311 wheel), the pinned
# packages of requirements.txt, Detectron2 0.6's Python sources, and pdl2ttnn itself (editable); and
# Tenstorrent's report tools, each in its own venv under .venv-tools/ (they need numpy 2, ttnn 0.81.1
# numpy 1; ttnn-visualizer pins another tt-perf-report): requirements-visualizer.txt,
# requirements-perf-report.txt. Debian packages (as root): RISC-V binutils for the mock device,
# chromium + chromium-driver for the visualizer's page test.
# Idempotent: when nothing it depends on changed since the last run, it returns in about a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
tools="$root/.venv-tools"
stamp="$venv/.pdl2ttnn-setup-stamp"
want="$(cat "$root/requirements.txt" "$root/requirements.lock" "$root/requirements-visualizer.txt" \
        "$root/requirements-perf-report.txt" "$root/pyproject.toml" "$root/scripts/setup.sh" \
        "$root/scripts/install_detectron2.py" "$root/runtime/ttnn_mock.py" | sha256sum | cut -d' ' -f1)"
# command -> Debian package: RISC-V binutils link the kernel stubs that let the real ttnn open a mock
# device (runtime/ttnn_mock.py); chromium and its driver load ttnn-visualizer's page in its test.
declare -A debian=([riscv64-unknown-elf-ld]=binutils-riscv64-unknown-elf [chromium]=chromium
                   [chromedriver]=chromium-driver)
missing=()
for command in "${!debian[@]}"; do command -v "$command" >/dev/null || missing+=("${debian[$command]}"); done
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && ${#missing[@]} -eq 0 && -x "$tools/visualizer/bin/ttnn-visualizer" \
      && -x "$tools/perf-report/bin/tt-perf-report" ]]; then
  exit 0
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") \
      >/dev/null || { echo "setup: apt-get could not install ${missing[*]}" >&2; exit 1; }
  else
    echo "setup: missing Debian packages: run 'sudo apt-get install ${missing[*]}' (the real-ttnn checks and the" \
         "ttnn-visualizer test need them), then run this script again" >&2
    exit 1
  fi
fi

find_python312() {
  local c
  # A pyenv shim named python3.12 can exist and still refuse to run, so each candidate must prove it.
  for c in "${PDL2TTNN_PYTHON:-}" "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 python3.12; do
    if [[ -n "$c" ]] && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      echo "$c"; return
    fi
  done
  echo "setup: Python 3.12 not found (ttnn 0.81.1 ships cp310/cp312 wheels only)." \
       "Install it (e.g. 'pyenv install 3.12') or set PDL2TTNN_PYTHON to its path." >&2
  exit 1
}

start=$SECONDS
[[ -x "$venv/bin/python" ]] || "$(find_python312)" -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/python" -m pip install --quiet -r "$root/requirements.txt" -c "$root/requirements.lock" 2> >(grep -v "is ignored: it is neither" >&2)
"$venv/bin/python" "$root/scripts/install_detectron2.py" 2> >(grep -v "is ignored: it is neither" >&2)
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root"
"$venv/bin/python" -m runtime.ttnn_mock build >/dev/null
for tool in visualizer perf-report; do
  [[ -x "$tools/$tool/bin/python" ]] || "$(find_python312)" -m venv "$tools/$tool"
  "$tools/$tool/bin/python" -m pip install --quiet -r "$root/requirements-$tool.txt" 2> >(grep -v "is ignored: it is neither" >&2)
done
echo "$want" > "$stamp"
echo "setup: environment ready in $((SECONDS - start)) s ($(du -sh "$venv" | cut -f1), tools $(du -sh "$tools" | cut -f1))"
