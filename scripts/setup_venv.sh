#!/usr/bin/env bash
# Create .venv in the repo root and install the project with the given extras, at the
# versions pinned in constraints.txt (the lock; scripts/lock.sh writes it).
# torch is pinned to the CPU build that this machine keeps on local disk; on a GPU
# machine install the matching CUDA torch first and pass TORCH_SPEC="" to keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-offline}"
TORCH_SPEC="${TORCH_SPEC-torch==2.13.0}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt ${TORCH_SPEC} -e ".[${EXTRAS}]"
