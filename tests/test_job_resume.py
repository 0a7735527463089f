"""Kill the job with SIGKILL (its whole process group) at several points, resume, and check
that every manifest id is in the output exactly once and nothing else is."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import cli
from conftest import BAD, GOOD
from servers import job_env, ray_stop

pytestmark = pytest.mark.slow
SHORT = ["wav16k_mono.wav", "flac16k_mono.flac", "mp3_22k_mono.mp3", "aac24k_mono.m4a", "opus48k_mono.ogg", "wav44k_stereo.wav"]


def _manifest(tmp: Path) -> list[str]:
    ids, lines = [], []
    for i in range(24):
        ids.append(f"rec-{i:03d}")
        lines.append(json.dumps({"id": ids[-1], "uri": str(GOOD / SHORT[i % len(SHORT)])}))
    for name in ("empty.wav", "truncated.mp3"):
        ids.append(f"bad-{name}")
        lines.append(json.dumps({"id": ids[-1], "uri": str(BAD / name)}))
    (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return ids


def _parts(run: Path) -> list[Path]:
    data = run / "data"
    return sorted(data.glob("part-*.parquet")) if data.is_dir() else []


def _ids_in(run: Path) -> list[str]:
    return [i for p in _parts(run) for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]


KILL_POINTS = {
    "after-plan": lambda run: (run / "run.json").exists(),
    "after-first-part": lambda run: len(_parts(run)) >= 1,
    "midway": lambda run: len(_parts(run)) >= 6,
}


@pytest.fixture(scope="module")
def env(asr_cache, offline_model_dir):
    e = job_env({}, asr_cache)  # the session's converted offline model
    yield e
    ray_stop(e)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_anywhere_then_resume_gives_each_id_once(point, env, tmp_path):
    ids = _manifest(tmp_path)
    run = tmp_path / "runs" / "nightly"
    args = ["run", "configs/local.yaml", "--input", str(tmp_path / "manifest.jsonl"), "--output", str(tmp_path / "runs"),
            "--run-id", "nightly", "--set", "stages.write.batch_size=2", "--set", "stages.transcribe.batch_size=2"]
    proc = cli.start(*args, env=env, capture=False, new_session=True)
    deadline = time.monotonic() + 300
    while not KILL_POINTS[point](run):
        assert proc.poll() is None, "the job ended before the kill point"
        assert time.monotonic() < deadline, "kill point not reached in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ray_stop(env)
    assert not (run / "_SUCCESS").exists()
    before = _ids_in(run)
    assert len(before) < len(ids)
    killed = cli.run("status", str(run), "--json", env=env, timeout=120)
    figures = json.loads(killed.stdout)  # what a user asks of the killed run: from its folder alone
    assert figures["state"] == "incomplete" and figures["resume"].startswith(f"asr-batch resume {run}")
    assert figures["ok"] + figures["failed"] == len(set(before)) and figures["remaining"] == len(ids) - len(set(before))

    done = cli.run("resume", str(run), env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _ids_in(run)
    assert sorted(after) == sorted(ids)  # every id, exactly once, nothing else
    success = json.loads((run / "_SUCCESS").read_text())
    assert success["rows"] == len(ids) and success["skipped"] == len(set(before))
    assert success["ok"] + success["failed"] + success["skipped"] == len(ids)  # counted once each
    assert success["run_failed"] == 2 and success["run_ok"] == len(ids) - 2

    again = cli.run("resume", str(run), env=env, timeout=600)
    assert again.returncode == 0 and sorted(_ids_in(run)) == sorted(ids)
    assert f"{len(ids)} already done, 0 to do" in again.stderr
    finished = json.loads(cli.run("status", str(tmp_path / "runs"), "--json", env=env, timeout=120).stdout)
    assert [(r["run_id"], r["state"], r["remaining"]) for r in finished["runs"]] == [("nightly", "complete", 0)]


def test_resume_refuses_settings_that_change_the_transcripts(env, offline_model_dir, tmp_path):
    ids = _manifest(tmp_path)
    run = tmp_path / "runs" / "r"
    proc = cli.start("run", "configs/local.yaml", "--input", str(tmp_path / "manifest.jsonl"), "--output",
                     str(tmp_path / "runs"), "--run-id", "r", env=env, capture=False, new_session=True)
    deadline = time.monotonic() + 120
    while not KILL_POINTS["after-plan"](run):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ray_stop(env)
    recorded = json.loads((run / "run.json").read_text())
    for change, key in ((f"model.id={offline_model_dir}", "model.model_id"), ("decoding.num_beams=2", "decoding.num_beams")):
        refused = cli.run("resume", str(run), "--set", change, env=env, timeout=300)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert len(refused.stderr.strip().splitlines()) == 1 and f"would change the transcripts ({key}:" in refused.stderr
    assert json.loads((run / "run.json").read_text()) == recorded and not _parts(run)  # nothing was written

    # Resources and batch sizes may change: the run keeps its recorded fingerprint.
    from jobs.run.pipeline import resume_config
    from jobs.run.planning import plan
    from jobs.run.preflight import preflight

    cfg = resume_config(str(run), ["stages.transcribe.batch_size=4", "decoding.batch_size=2"])
    resumed = plan(cfg, preflight(cfg), resume=True)
    assert resumed.fingerprint == recorded["config_fingerprint"] and resumed.todo.num_rows == len(ids)


def test_a_model_that_cannot_load_in_the_job_is_one_line_and_resumable(env, offline_model_dir, tmp_path):
    """Preflight passes (config files readable, weights present) but the actors cannot load the weights."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for f in offline_model_dir.iterdir():
        if f.suffix == ".json":
            (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    _manifest(tmp_path)
    run = tmp_path / "runs" / "broken"
    proc = cli.run("run", "configs/local.yaml", "--input", str(tmp_path / "manifest.jsonl"), "--output",
                   str(tmp_path / "runs"), "--run-id", "broken", "--set", f"model.id={broken}", env=env, timeout=600)
    ray_stop(env)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("asr-batch: the run stopped: ModelLoadError: cannot load Whisper model"), proc.stderr[-3000:]
    assert last.endswith(f"asr-batch resume {run}")
    assert "Traceback" not in proc.stderr
    assert (run / "run.json").exists() and not (run / "_SUCCESS").exists()
