#!/usr/bin/env bash
# The device check, one command on a GPU machine, and its dry run here.
#
#   bash scripts/gpu_check.sh pack   # here, before the device call: .gpu/site.tar.xz, what the GPU image lacks
#   bash scripts/gpu_check.sh run    # on the GPU machine (the device tool, carry [".gpu"]): stage, then the JSON
#   bash scripts/gpu_check.sh dry    # here, CPU: `run` as on the device, on dummy tiny, in a Python like the image's
#
# The GPU image has torch, transformers, numpy, pyarrow, pandas, fsspec but not ray or av
# (scripts/gpu_pack.py): `run` unpacks the pack once per content into $ASR_GPU_SITE and runs
# scripts/bench_gpu_job.py with it and this tree on PYTHONPATH; nothing is pip-installed
# and nothing is downloaded. The JSON goes to stdout and, on the device, to $OUT.
# `dry` builds (once, in $ASR_GPU_IMAGE) a virtual environment holding only the image's
# packages at this checkout's lock, packs for its Python (fast xz), and runs `run --dry`
# with it: a package the pack misses fails here, not on the device.
set -euo pipefail
cd "$(dirname "$0")/.."
SITE="${ASR_GPU_SITE:-${TMPDIR:-/tmp}/asr-gpu-site}"

stage() {  # unpack .gpu/site.tar.xz into $SITE unless it already holds this pack; check every package is there
  local want
  want="$(sed -n 's/.*"sha256": "\([0-9a-f]*\)".*/\1/p' .gpu/site.json)"
  [ -n "$want" ] || { echo "gpu_check: .gpu/site.json has no sha256; run: bash scripts/gpu_check.sh pack" >&2; exit 2; }
  echo "$want  .gpu/site.tar.xz" | sha256sum --quiet -c - || { echo "gpu_check: .gpu/site.tar.xz is damaged" >&2; exit 2; }
  if [ "$(cat "$SITE/.sha256" 2>/dev/null)" != "$want" ]; then
    rm -rf "$SITE" && mkdir -p "$SITE"
    tar -C "$SITE" -xJf .gpu/site.tar.xz
    echo "$want" > "$SITE/.sha256"
  fi
  python3 - "$SITE" <<'PY'
import json, re, sys
from pathlib import Path
site = Path(sys.argv[1])
have = {re.sub(r"[-_.]+", "-", p.name.split("-")[0]).lower() for p in site.glob("*.dist-info")}
packed = json.load(open(".gpu/site.json"))["packages"]
missing = sorted(n for n in packed if re.sub(r"[-_.]+", "-", n).lower() not in have)
if missing:
    sys.exit(f"gpu_check: {site} lacks {missing}")
print(f"gpu_check: staged {len(packed)} packages in {site}", file=sys.stderr)
PY
}

export HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled TRANSFORMERS_VERBOSITY=error
export ASR_BATCH_CACHE="${ASR_BATCH_CACHE:-${TMPDIR:-/tmp}/asr-gpu-cache}"
case "${1:-}" in
  pack) .venv/bin/python scripts/gpu_pack.py ;;
  run)
    py="${GPU_PYTHON:-python3}"
    have="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    packed="$(sed -n 's/.*"python": "\([0-9.]*\)".*/\1/p' .gpu/site.json)"
    [ "$have" = "$packed" ] || { echo "gpu_check: the pack is for Python $packed, $py is $have; run: bash scripts/gpu_check.sh pack" >&2; exit 2; }
    stage
    PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" "$py" scripts/bench_gpu_job.py "${@:2}" ;;
  dry)
    image="${ASR_GPU_IMAGE:-${TMPDIR:-/tmp}/asr-gpu-image}"
    .venv/bin/python scripts/gpu_pack.py --image > "${TMPDIR:-/tmp}/asr-gpu-image.txt"
    if ! cmp -s "${TMPDIR:-/tmp}/asr-gpu-image.txt" "$image/requirements.txt"; then  # new, or another lock
      rm -rf "$image" && python3 -m venv "$image"
      "$image/bin/python" -m pip install -q --disable-pip-version-check -r "${TMPDIR:-/tmp}/asr-gpu-image.txt" >&2
      cp "${TMPDIR:-/tmp}/asr-gpu-image.txt" "$image/requirements.txt"  # last: marks it complete
    fi
    version="$("$image/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    .venv/bin/python scripts/gpu_pack.py --fast --python "$version" >&2
    GPU_PYTHON="$image/bin/python" bash "$0" run --dry "${@:2}" ;;
  *) echo "usage: bash scripts/gpu_check.sh pack|run|dry [bench_gpu_job.py options]" >&2; exit 2 ;;
esac
