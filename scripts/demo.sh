#!/usr/bin/env bash
# The README's run command: set up .venv and run on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh offline
.venv/bin/asr-batch prepare-offline-model
