#!/usr/bin/env bash
# The formatter and linter CI runs (configured in pyproject.toml, [tool.ruff]); `tools/lint.sh --fix` applies both.
set -euo pipefail
cd "$(dirname "$0")/.."
RUFF=${RUFF:-.venv/bin/ruff}
if [ "${1:-}" = "--fix" ]; then
  "$RUFF" check --fix .
  "$RUFF" format .
else
  "$RUFF" format --check .
  "$RUFF" check .
fi
