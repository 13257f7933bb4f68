#!/usr/bin/env bash
# Set the machine up (scripts/setup.sh), then run the whole test suite.
# Extra arguments go to pytest: scripts/test.sh -k harness -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
PYTHON=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
echo "[test] $PYTHON -m ruff check lakefs tests scripts"
"$PYTHON" -m ruff check lakefs tests scripts
echo "[test] $PYTHON -m pytest -q $*"
# pytest-timeout (pyproject) bounds each test; `timeout` bounds the whole run.
exec timeout --kill-after=60 "${LAKEFS_TEST_TIMEOUT:-3600}" "$PYTHON" -m pytest -q "$@"
