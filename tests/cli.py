"""``asr-batch`` as a user runs it: ``python -m jobs.cli`` in a subprocess, on this checkout's code.

``run`` waits for the command and returns its exit status and output; ``start`` returns the
running process, for the tests that watch a job and kill it (or a worker) mid-run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout whose code the command runs
TIMEOUT_S = 600  # s a command may take unless its test says otherwise: a hung job fails, not stalls the suite


def command(*args: str) -> list[str]:
    """The argv of ``asr-batch ARGS``."""
    return [sys.executable, "-m", "jobs.cli", *args]


def environment(env: dict[str, str] | None = None, cache: Path | None = None) -> dict[str, str]:
    """``env`` (default: this process's), with ``ASR_BATCH_CACHE=cache`` when given and this checkout first on the path.

    The checkout goes on ``PYTHONPATH`` so that a command run from another folder (``cwd``) still
    imports this checkout's ``jobs`` and ``asr_actor``, not an installed copy.
    """
    env = dict(os.environ if env is None else env)
    if cache is not None:
        env["ASR_BATCH_CACHE"] = str(cache)
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *path])
    return env


def run(*args: str, env: dict[str, str] | None = None, cache: Path | None = None, cwd: Path | None = None,
        timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``asr-batch ARGS`` to its end; stdout and stderr captured as text."""
    return subprocess.run(command(*args), env=environment(env, cache), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def start(*args: str, env: dict[str, str] | None = None, cache: Path | None = None, cwd: Path | None = None,
          capture: bool = True, new_session: bool = False) -> subprocess.Popen:
    """Start ``asr-batch ARGS`` and return at once.

    ``capture``: stdout and stderr as text pipes (read them with ``communicate``), else discarded.
    ``new_session``: the job leads its own process group, so that ``os.killpg`` kills it with
    every process it started, as a node's loss would.
    """
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(command(*args), env=environment(env, cache), cwd=cwd, stdout=out, stderr=out, text=True,
                            start_new_session=new_session)
