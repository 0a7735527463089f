"""The package stands alone: its wheel, installed outside the checkout, runs the job as a user would.

The wheel is built from a copy of the checkout (``pip wheel``, as the README says) and installed
into a fresh venv in a temporary folder. So that no dependency is downloaded, that venv sees the
packages of this one through a ``.pth`` file holding its site-packages folder as a plain path
line: Python appends the folder to ``sys.path`` without running the ``.pth`` files inside it, so
the checkout's editable install (its ``__editable__`` finder) stays off and ``jobs`` can only
come from the wheel. Every command runs from a folder outside the checkout with no PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import GOOD
from servers import job_env, ray_command, ray_head, ray_stop

ROOT = Path(__file__).resolve().parent.parent
NOT_BUILT_FROM = shutil.ignore_patterns(  # what the copy the wheel is built from leaves out: not sources, or outputs
    ".git", ".venv", "tests", "bench", "build", "*.egg-info", "__pycache__", "runs", ".cache", ".gpu")
FILES = ("mp3_22k_mono.mp3", "wav8k_mono.wav")  # two short good fixtures (5 s each)
LOCK_ID = re.compile(r"lock ([0-9a-f]{12}), as locked\)$")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel . --no-deps`` of (a copy of) this checkout; the copy keeps build/ and *.egg-info out of it."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=NOT_BUILT_FROM)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tmp / "src"), "--no-deps", "--no-build-isolation",
                    "--no-index", "--disable-pip-version-check", "-q", "-w", str(tmp / "dist")],
                   check=True, capture_output=True, timeout=300)
    (built,) = (tmp / "dist").glob("asr_batch-*.whl")
    return built


def bare_venv(folder: Path) -> Path:
    """A new venv at ``folder`` without asr-batch, seeing this venv's packages but not its editable install."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True, timeout=120)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "asr_batch_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # a path line, nothing run
    return python


def user_env(venv_python: Path, cache: Path, **extra: str) -> dict[str, str]:
    """The job's environment (servers.job_env) as a user of that venv has it: its bin first, no PYTHONPATH."""
    env = job_env(extra, cache)
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join([str(venv_python.parent), env.get("PATH", "")])
    return env


def manifest(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps({"uri": str(GOOD / name), "id": name}) + "\n" for name in FILES))
    return path


def check(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def rows_of(folder: Path) -> dict[str, dict]:
    return {r["id"]: r for part in sorted(folder.glob("*.parquet")) for r in pq.read_table(part).to_pylist()}


def checkout_lock() -> str:
    from jobs.run.versions import lock_state

    return lock_state()["lock"]


@pytest.mark.slow
def test_the_wheel_installed_outside_the_checkout_runs_the_job(wheel, tmp_path):
    python = bare_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                    "-q", str(wheel)], check=True, capture_output=True, timeout=300)
    env, work = user_env(python, tmp_path / "cache"), tmp_path / "work"  # a newcomer's empty model cache
    inputs = manifest(work)

    def user(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python.parent / "asr-batch"), *args], env=env, cwd=work, capture_output=True,
                              text=True, timeout=300)

    imports = "import jobs, asr_actor; print(jobs.__file__, asr_actor.__file__)"
    where = check(subprocess.run([str(python), "-c", imports], env=env, cwd=work, capture_output=True, text=True))
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where.split()), where

    version = check(user("--version")).strip()
    assert version.startswith("asr-batch 0.1.0 (") and LOCK_ID.search(version)[1] == checkout_lock(), version
    model = Path(check(user("prepare-offline-model")).strip())
    assert model.is_relative_to(tmp_path / "cache") and (model / "model.safetensors").is_file()
    try:
        # the CPU workers reserve Ray memory too (stages.prepare.memory_gib reaches map_batches' memory=)
        out = check(user("run", "local", "--input", str(inputs), "--output", "runs", "--run-id", "r1",
                         "--set", "stages.prepare.memory_gib=0.5"))
    finally:
        ray_stop(env)
    assert "done: 2 ok, 0 failed, 0 skipped" in out
    run = work / "runs" / "r1"
    assert json.loads((run / "_SUCCESS").read_text())["run_ok"] == 2
    assert json.loads((run / "run.json").read_text())["lock"] == {"lock": checkout_lock(), "differs": {}}
    rows = rows_of(run / "data")
    assert sorted(rows) == sorted(FILES) and all(r["text"] and r["error"] is None for r in rows.values())

    assert "state      complete" in check(user("status", "runs/r1"))
    check(user("export", "runs/r1", "--to", "exported"))
    assert {i: r["text"] for i, r in rows_of(work / "exported").items()} == {i: r["text"] for i, r in rows.items()}


@pytest.mark.slow
def test_ray_job_submit_ships_the_wheel_as_py_modules(wheel, tmp_path, offline_model_dir):
    """A head whose venv holds no asr-batch runs the job from the wheel the submission uploads.

    Ray installs a py_modules wheel with ``pip install --target`` per job, which resolves the
    wheel's dependencies afresh unless told not to: ``PIP_NO_DEPS=1`` on the nodes keeps the
    image's (locked) ones, and PIP_NO_INDEX=1 here proves nothing is downloaded.
    """
    python = bare_venv(tmp_path / "venv")
    env = user_env(python, offline_model_dir.parents[1], PIP_NO_DEPS="1", PIP_NO_INDEX="1")
    work = tmp_path / "work"
    inputs = manifest(work)
    absent = subprocess.run([str(python), "-c", "import jobs"], env=env, cwd=work, capture_output=True, text=True)
    assert absent.returncode != 0 and "No module named 'jobs'" in absent.stderr
    script = ("python -c 'import jobs; print(\"code:\", jobs.__file__)' && "
              f"python -m jobs.cli run local --input {inputs} --output {work / 'runs'} --run-id submitted")
    with ray_head(env, python=python, cwd=work) as address:
        submit = [*ray_command(python), "job", "submit", "--address", address,
                  "--runtime-env-json", json.dumps({"py_modules": [str(wheel)]}), "--", "sh", "-c", script]
        proc = subprocess.run(submit, env=env, cwd=work, capture_output=True, text=True, timeout=300)
    out = check(proc)
    code = Path(re.search(r"^code: (\S+)$", out, re.M)[1])
    assert "runtime_resources" in code.parts and "py_modules_files" in code.parts, code  # Ray's copy of the wheel
    assert "done: 2 ok, 0 failed, 0 skipped" in out
    assert sorted(rows_of(work / "runs" / "submitted" / "data")) == sorted(FILES)


def test_a_bare_config_name_is_a_builtin_config_and_a_path_is_a_file(tmp_path):
    from asr_actor.config import ConfigError
    from jobs.config import config_file, load_config
    from jobs.shipped import builtin_configs

    assert sorted(builtin_configs()) == sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert config_file("local") == ROOT / "configs" / "local.yaml"
    assert config_file("configs/local.yaml") == Path("configs/local.yaml")  # a path, relative to the cwd
    assert load_config("gpu", input="in", output="out").model.device == "cuda"
    with pytest.raises(ConfigError, match=r"^nightly: no such built-in config \(cluster, gpu, local\); give a YAML"):
        config_file("nightly")


def test_without_a_lock_the_version_says_so(monkeypatch, tmp_path):
    import jobs.shipped
    from jobs.run import versions

    monkeypatch.setattr(jobs.shipped, "PACKAGED", tmp_path / "none")
    monkeypatch.setattr(jobs.shipped, "CHECKOUT", tmp_path)  # neither a wheel's copies nor a checkout
    assert versions.lock_file() is None and versions.locked() == {}
    assert versions.lock_state() == {"lock": None, "differs": {}}
    assert versions.version_line().endswith("; no lock recorded)")
