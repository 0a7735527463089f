#!/usr/bin/env bash
# The README's run command: set up .venv, convert the embedded tiny.en once, and
# transcribe the bundled sample audio (good and bad files) on this machine's CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh offline
mkdir -p runs/demo
.venv/bin/asr-batch transcribe tests/data/good tests/data/bad -o runs/demo/transcripts.jsonl
echo "transcripts: $(pwd)/runs/demo/transcripts.jsonl"
