"""What is installed, against the lock of the tested versions (``constraints.txt``).

``asr-batch --version`` shows it in one line and ``run.json`` records it, so a run on
a cluster whose nodes drifted from the tested versions says so. Only installed
metadata and the lock file are read: nothing is imported. The lock is the checkout's
``constraints.txt``, or the copy a wheel carries (:mod:`jobs.shipped`).
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from jobs.shipped import shipped_file

PACKAGES = ("asr-batch", "torch", "transformers", "ray", "pyarrow", "av", "fsspec", "s3fs")  # recorded in run.json
SHOWN = ("torch", "transformers", "ray")  # on the --version line
LOCK_NAME = "constraints.txt"  # scripts/lock.sh writes it; a wheel carries a copy
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def normalized(name: str) -> str:
    """A distribution's name as pip compares it (PEP 503): ``PyYAML`` and ``pyyaml`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_file() -> Path | None:
    """The lock this code was built or checked out with; None where there is none."""
    return shipped_file(LOCK_NAME)


def locked(lock: Path | None = None) -> dict[str, str]:
    """The lock's pins (default: :func:`lock_file`'s): normalized name -> version; none without a lock."""
    lock = lock or lock_file()
    if lock is None or not lock.is_file():
        return {}
    return {normalized(pin[1]): pin[2] for line in lock.read_text().splitlines() if (pin := _PIN.match(line))}


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None: not installed)."""
    return {name: installed(name) for name in PACKAGES}


def lock_state(lock: Path | None = None) -> dict[str, Any]:
    """``{"lock": id, "differs": {name: {"locked", "installed"}}}`` for the installed packages the lock pins.

    ``lock`` (default: :func:`lock_file`) is summed up by the first 12 hex digits of the
    file's sha256, or None where no lock was recorded (code neither in a checkout nor from
    a wheel built by setup.py). A pinned package that is not installed (an extra not
    asked for) is no difference.
    """
    lock = lock or lock_file()
    if lock is None or not lock.is_file():
        return {"lock": None, "differs": {}}
    have: dict[str, str] = {}
    for dist in metadata.distributions():  # in sys.path order: the first of a name is the one imports get;
        if dist.metadata["Name"]:  # later copies (setuptools puts its _vendor folder on sys.path) are not installed
            have.setdefault(normalized(dist.metadata["Name"]), dist.version)
    differs = {name: {"locked": version, "installed": have[name]}
               for name, version in locked(lock).items() if have.get(name) not in (None, version)}
    return {"lock": hashlib.sha256(lock.read_bytes()).hexdigest()[:12], "differs": differs}


def describe_lock(state: dict[str, Any]) -> str:
    """``lock 1a2b3c4d5e6f, as locked``, or which packages differ from it."""
    if state["lock"] is None:
        return "no lock recorded"
    if not state["differs"]:
        return f"lock {state['lock']}, as locked"
    shown = ", ".join(f"{n} {v['installed']} (locked {v['locked']})" for n, v in sorted(state["differs"].items())[:3])
    more = len(state["differs"]) - 3
    return f"lock {state['lock']}, {len(state['differs'])} differ: {shown}" + (f" and {more} more" if more > 0 else "")


def version_line() -> str:
    """``asr-batch X (torch Y, transformers Z, ray W; lock …)``."""
    engine = ", ".join(f"{n} {installed(n) or 'not installed'}" for n in SHOWN)
    return f"asr-batch {installed('asr-batch') or 'not installed'} ({engine}; {describe_lock(lock_state())})"
