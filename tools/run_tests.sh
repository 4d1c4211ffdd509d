#!/usr/bin/env bash
# Runs the test suite in the project venv: the formatter/linter check first (tools/lint.sh), then pytest over
# the given paths (default: every tier under tests/). pytest exits 5 when it collected no test: that is a
# failure here. The 25 slowest tests are printed at the end (--durations) to keep the tiers honest.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
if [ -z "${DAV2_SKIP_LINT:-}" ]; then
  bash tools/lint.sh || { echo "run_tests: ruff format/check failed (tools/lint.sh --fix mends most)" >&2; exit 1; }
fi
[ "$#" -gt 0 ] || set -- tests
.venv/bin/python -m pytest -ra --durations=25 --junitxml=test-artifacts/junit.xml "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run_tests: pytest collected no tests - treating as a failure" >&2
  exit 1
fi
exit "$rc"
