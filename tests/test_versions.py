"""``constraints.txt``: the lock of the tested versions covers what pyproject.toml asks for, and the suite runs on it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from jobs.run.versions import describe_lock, lock_state, locked, normalized

ROOT = Path(__file__).resolve().parent.parent
NOT_LOCKED = {"torch", "flash-attn"}  # torch: TORCH_SPEC pins it; flash-attn (extra gpu) builds only against CUDA


def test_every_dependency_pyproject_declares_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    pins = locked()
    checked = 0
    for text in declared:
        req = Requirement(text)
        if normalized(req.name) in NOT_LOCKED or normalized(req.name) == normalized(project["name"]):
            continue
        assert normalized(req.name) in pins, f"{req.name} is declared in pyproject.toml but not locked: run scripts/lock.sh"
        assert req.specifier.contains(pins[normalized(req.name)], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[normalized(req.name)]}, outside pyproject's {req.specifier}: "
            "run scripts/lock.sh")
        checked += 1
    assert checked >= 20 and "torch" not in pins


def test_the_suite_runs_on_the_locked_versions():
    import setuptools  # noqa: F401 - puts its _vendor folder (older more-itertools, packaging…) on sys.path

    state = lock_state()
    assert state["lock"] is not None and len(state["lock"]) == 12
    assert state["differs"] == {}, describe_lock(state)  # the installed copies, not setuptools' vendored ones


def test_a_drifted_install_is_named_with_its_locked_version(tmp_path):
    lock = tmp_path / "constraints.txt"
    lock.write_text("# a comment\nPyYAML==0.0.1\nnot-installed-anywhere==1.0\n")
    state = lock_state(lock)
    assert list(state["differs"]) == ["pyyaml"] and state["differs"]["pyyaml"]["locked"] == "0.0.1"
    assert describe_lock(state).startswith(f"lock {state['lock']}, 1 differ: pyyaml ")
    assert describe_lock(lock_state(tmp_path / "none.txt")) == "no lock recorded"
