#!/usr/bin/env bash
# The README's run command: set up .venv, then run the Ray Data job on the embedded
# default (configs/local.yaml: the bundled sample audio in tests/data/, good and bad
# files, the offline tiny.en converted once, CPU, a local Ray) into runs/<run_id>/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh offline
export RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled
RUN_ID="demo-$(date -u +%Y%m%dT%H%M%SZ)"
.venv/bin/asr-batch run configs/local.yaml --run-id "$RUN_ID"
.venv/bin/python - "runs/$RUN_ID" <<'PY'
import sys
import pyarrow.parquet as pq
run = sys.argv[1]
table = pq.read_table(f"{run}/data").sort_by("id")
for row in table.select(["id", "duration_s", "text", "error"]).to_pylist():
    print(f"{row['id'].rsplit('/', 1)[-1]:24} {row['duration_s']:7.1f}s  {(row['text'] or row['error'])[:90]}")
print(f"transcripts: {run}/data/part-*.parquet ({table.num_rows} rows); summary: {run}/_SUCCESS")
PY
