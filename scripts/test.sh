#!/usr/bin/env bash
# The README's test command: set up .venv with the test extras, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh test
exec .venv/bin/python -m pytest "$@"
