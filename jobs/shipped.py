"""The repository's files the command reads at run time: the lock and the built-in configs.

``constraints.txt`` (the lock ``--version`` and ``run.json`` compare against) and
``configs/*.yaml`` (``asr-batch run local``) are kept once, in the repository. Run from
the checkout, they are read there; a wheel carries copies at the same relative paths under
``jobs/_shipped/`` (``setup.py`` copies them at build time), so an install outside the
checkout has them too.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "_shipped"  # a wheel's copies (setup.py: PACKAGED)
CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root, when this file is in a checkout
CONFIGS = "configs"  # the built-in configs' folder, relative to either


def shipped_root() -> Path | None:
    """Where the shipped files are: the wheel's copies, else the checkout's root, else None (neither)."""
    if PACKAGED.is_dir():
        return PACKAGED
    return CHECKOUT if (CHECKOUT / "pyproject.toml").is_file() else None  # not site-packages: never guess there


def shipped_file(relative: str) -> Path | None:
    """``relative`` (``constraints.txt``, ``configs/local.yaml``) as shipped, or None when there is none."""
    root = shipped_root()
    return root / relative if root is not None and (root / relative).is_file() else None


def builtin_configs() -> dict[str, Path]:
    """name -> file of every built-in config (``local`` -> ``configs/local.yaml``)."""
    root = shipped_root()
    folder = root / CONFIGS if root is not None else None
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder is not None and folder.is_dir() else {}
