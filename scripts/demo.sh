#!/usr/bin/env bash
# The README's run command: set up .venv, then run the Ray Data job on the embedded
# default (configs/local.yaml: the bundled sample audio in tests/data/, good and bad
# files, the offline tiny.en converted once, CPU, a local Ray) into runs/<run_id>/,
# and show the result with the job's own commands: the run's status, then one JSON
# line per input (id, seconds of audio, transcript, error with its stage and cause).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh offline
export RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled
RUN="runs/demo-$(date -u +%Y%m%dT%H%M%SZ)"
.venv/bin/asr-batch run configs/local.yaml --run-id "${RUN#runs/}"
echo
.venv/bin/asr-batch status "$RUN"
echo
.venv/bin/asr-batch export "$RUN" --to - --format jsonl --columns id,duration_s,text,error
