#!/usr/bin/env bash
# Sets up the environment if needed, then runs the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
set +e
# both cores: two workers, each taking whole test files (a file's module fixtures are built once);
# the 40 slowest tests end every run's output: where the suite's time goes, run after run
.venv/bin/python -m pytest -n 2 --dist loadfile --durations=40 "$@"
status=$?
set -e
# pytest's 5 = "no tests collected": a suite that ran nothing must not look green.
if [[ $status -eq 5 ]]; then echo "test: no tests were collected" >&2; exit 1; fi
exit $status
