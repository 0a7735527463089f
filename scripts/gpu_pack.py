"""Pack what the GPU machine's image lacks into one file that travels with the tree (64 MiB per call).

The device image has Python 3.12, torch with CUDA, transformers and a few libraries
(:data:`IMAGE`), but not ray or av. This script takes the project's dependency closure
as this checkout's environment installs it (the lock's versions), removes what the
image's own packages already bring, downloads the rest as CPython 3.12 manylinux
wheels, unpacks them into one folder (no pip needed there), drops the parts of ray
the job never uses (its Java jars, the dashboard's web client) and writes
``.gpu/site.tar.xz`` with its SHA-256. ``scripts/gpu_check.sh`` unpacks it on the device.

    .venv/bin/python scripts/gpu_pack.py            # xz -9: what travels
    .venv/bin/python scripts/gpu_pack.py --fast     # xz -1: the dry run's, same contents
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".gpu"
PROJECT = "asr-batch"
# What the device image installs (checked 2026-11-27); their dependencies come with them.
IMAGE = ("torch", "transformers", "numpy", "pyarrow", "pandas", "fsspec", "msgpack", "protobuf", "aiohttp",
         "click", "requests")
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
UNUSED = ("ray/jars", "ray/dashboard/client/build", "ray/core/src/ray/raylet/raylet.debug")  # never run by the job
LIMIT_MIB = 60  # of the 64 MiB a call carries, the rest is the tree


def closure(roots: list[tuple[str, tuple[str, ...]]]) -> dict[str, str]:
    """Canonical name -> installed version of ``roots`` and everything they require (with their extras)."""
    seen: dict[str, str] = {}
    done: set[tuple[str, tuple[str, ...]]] = set()
    stack = list(roots)
    while stack:
        name, extras = stack.pop()
        if (canonicalize_name(name), extras) in done:
            continue
        done.add((canonicalize_name(name), extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a marker-excluded or optional requirement this environment does not have
        seen[canonicalize_name(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or ("",))):
                stack.append((req.name, tuple(sorted(req.extras))))
    return seen


def image_packages() -> dict[str, str]:
    """The image's own packages (not their dependencies) at this environment's versions."""
    return {name: version.split("+")[0] for name, version in closure([(n, ()) for n in IMAGE]).items() if name in IMAGE}


def wanted() -> dict[str, str]:
    """What the job needs that the image does not bring: name -> version."""
    need = closure([(PROJECT, ())])
    have = closure([(name, ()) for name in IMAGE])
    return {n: v for n, v in sorted(need.items()) if n not in have and n != canonicalize_name(PROJECT)}


def download(packages: dict[str, str], dest: Path, python: str = PYTHON) -> list[Path]:
    platforms = [x for p in PLATFORMS for x in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", "--python-version", python, "--implementation", "cp", *platforms, "-d", str(dest),
         *(f"{n}=={v}" for n, v in packages.items())],
        check=True,
    )
    return sorted(dest.glob("*.whl"))


def unpack(wheels: list[Path], site: Path) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(site)
    for rel in UNUSED:
        shutil.rmtree(site / rel, ignore_errors=True) if (site / rel).is_dir() else (site / rel).unlink(missing_ok=True)
    for path in site.rglob("*"):  # zip keeps no modes: native programs (raylet, gcs_server) must run
        if path.is_file() and (path.suffix in ("", ".so") or ".so." in path.name):
            path.chmod(0o755)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="xz -1 instead of -9 (the dry run; the size limit is not checked)")
    parser.add_argument("--python", default=PYTHON, help=f"the Python the wheels are for (default {PYTHON}, the image's)")
    parser.add_argument("--image", action="store_true",
                        help="print the requirements of a Python like the image's (its packages at this lock) and stop")
    args = parser.parse_args()
    if args.image:
        print("\n".join(f"{name}=={version}" for name, version in sorted(image_packages().items())))
        return 0
    packages = wanted()
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-pack-") as tmp:
        site = Path(tmp) / "site"
        unpack(download(packages, Path(tmp) / "wheels", args.python), site)
        archive = OUT / "site.tar.xz"
        level = "-1" if args.fast else "-9"
        subprocess.run(["tar", "-C", str(site), "-cf", str(archive), "--use-compress-program", f"xz -T0 {level}", "."],
                       check=True)
    size_mib = archive.stat().st_size / 2**20
    manifest = {"packages": packages, "python": args.python, "sha256": sha256(archive), "mib": round(size_mib, 1),
                "xz": level}
    (OUT / "site.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest))
    if not args.fast and size_mib > LIMIT_MIB:
        print(f"gpu_pack: {archive} is {size_mib:.1f} MiB, over the {LIMIT_MIB} MiB a device call carries", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
