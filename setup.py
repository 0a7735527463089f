"""Build hook: the wheel carries the repository's files that the command reads at run time.

``pyproject.toml`` holds the project's metadata; this adds one step to ``build_py``: a copy of
the lock (``constraints.txt``) and of the built-in configs (``configs/*.yaml``) under
``jobs/_shipped/``, at the same relative paths, where :mod:`jobs.shipped` finds them in an
install outside the checkout. The repository keeps the one copy of each; an editable install
reads them in place.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Globs relative to the repository root; MANIFEST.in puts the same files into the sdist.
SHIPPED = ("constraints.txt", "configs/*.yaml")
PACKAGED = Path("jobs", "_shipped")  # where the wheel has them (jobs/shipped.py: PACKAGED)


class BuildPyWithRepoFiles(build_py):
    """``build_py``, then the repository's run-time files copied into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        for pattern in SHIPPED:
            found = sorted(ROOT.glob(pattern))
            if not found:
                raise SystemExit(f"setup.py: no {pattern} in {ROOT}: the wheel would lack it")
            for source in found:
                target = Path(self.build_lib) / PACKAGED / source.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildPyWithRepoFiles})
