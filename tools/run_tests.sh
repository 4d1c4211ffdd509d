#!/usr/bin/env bash
# Runs the test suite in the project venv. pytest exits 5 when it collected no test: that is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
.venv/bin/python -m pytest -ra --junitxml=test-artifacts/junit.xml "$@" tests
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run_tests: pytest collected no tests - treating as a failure" >&2
  exit 1
fi
exit "$rc"
