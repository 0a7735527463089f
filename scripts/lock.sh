#!/usr/bin/env bash
# Write constraints.txt, the lock of the tested versions: every package that the
# project and all its installable extras pull in, resolved afresh in a throw-away venv
# and pinned with ==. scripts/setup_venv.sh (and so the README's two commands and CI)
# installs with it, so two fresh installs of one commit get the same packages.
# torch is left out on purpose: setup_venv.sh pins it (TORCH_SPEC), and a GPU machine
# keeps the CUDA build it has. After running this, run scripts/test.sh and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="test,gcs,bench"  # every extra but gpu (flash-attn builds only against a CUDA toolkit)
TORCH_SPEC="${TORCH_SPEC-torch==2.13.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check ${TORCH_SPEC} -e ".[${EXTRAS}]"
{
  echo "# The lock of the tested versions, written by scripts/lock.sh on $(date -u +%F) with"
  echo "# Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())')"
  echo "# for asr-batch[${EXTRAS}]; torch is pinned by scripts/setup_venv.sh instead. Do not edit: rerun the script."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check \
    | grep -viE '^(torch|triton|nvidia-[a-z0-9_-]+|cuda-[a-z0-9_-]+)==' | LC_ALL=C sort -f
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) packages pinned"
