"""Workers and nodes lost mid-run: the job recovers by itself, every id exactly once.

One test SIGKILLs the model actor's process on a local cluster; the others run on a real
two-node cluster (Ray's ``Cluster`` harness: two raylets on this machine) and SIGKILL
every process of the worker node when the first part lands.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from conftest import BAD, GOOD
from servers import job_env, kill_worker_node, ray_stop, two_node_cluster

pytestmark = pytest.mark.slow
SHORT = ["wav16k_mono.wav", "flac16k_mono.flac", "mp3_22k_mono.mp3", "aac24k_mono.m4a", "opus48k_mono.ogg"]
HEAD_CPUS, WORKER_CPUS = 4, 2  # the head alone still holds one model actor (2), a CPU worker (1) and the writer (0.5)


def _manifest(tmp: Path, n: int = 16) -> list[str]:
    ids = [f"rec-{i:03d}" for i in range(n)] + ["bad-empty"]
    uris = [str(GOOD / SHORT[i % len(SHORT)]) for i in range(n)] + [str(BAD / "empty.wav")]
    (tmp / "m.jsonl").write_text("".join(json.dumps({"id": i, "uri": u}) + "\n" for i, u in zip(ids, uris)))
    return ids


def _ids(run: Path) -> list[str]:
    return [i for p in sorted((run / "data").glob("part-*.parquet")) for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]


def _cli(*args):
    return [sys.executable, "-m", "jobs.cli", *args]


def _wait_first_part(run: Path, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not ((run / "data").is_dir() and any((run / "data").glob("part-*.parquet"))):
        assert proc.poll() is None, "the job ended before the fault"
        assert time.monotonic() < deadline, "no part landed in time"
        time.sleep(0.1)


@pytest.fixture
def env(asr_cache, offline_model_dir):
    e = job_env({}, asr_cache)
    yield e
    ray_stop(e)


def _check_finished(proc: subprocess.Popen, run: Path, ids: list[str]) -> str:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-4000:]
    assert "lost a worker or node" in err and "recovery 1 of 3" in err, err[-4000:]
    assert sorted(_ids(run)) == sorted(ids)  # every id, exactly once, with no manual resume
    success = json.loads((run / "_SUCCESS").read_text())
    assert success["run_failed"] == 1 and success["ok"] + success["failed"] + success["skipped"] == len(ids)
    return out


def test_a_killed_model_actor_is_recovered_from(env, tmp_path):
    ids = _manifest(tmp_path)
    run = tmp_path / "runs" / "r"
    proc = subprocess.Popen(_cli("run", "configs/local.yaml", "--input", str(tmp_path / "m.jsonl"), "--output",
                                 str(tmp_path / "runs"), "--run-id", "r", "--set", "stages.transcribe.batch_size=2",
                                 "--set", "stages.write.batch_size=2"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_first_part(run, proc)
    actors = [p for p in psutil.process_iter(["cmdline"]) if "ModelWorker" in " ".join(p.info["cmdline"] or [])]
    assert actors, "no model actor process found"
    for actor in actors:
        actor.send_signal(signal.SIGKILL)  # mid-batch: it had more files to do
    _check_finished(proc, run, ids)


def test_a_lost_worker_node_is_recovered_from(env, tmp_path):
    ids = _manifest(tmp_path)
    run = tmp_path / "runs" / "r"
    with two_node_cluster(env, HEAD_CPUS, WORKER_CPUS) as (address, host):
        # A plain local path, on a cluster of several nodes, is refused before anything is written.
        local = subprocess.run(_cli("run", "configs/local.yaml", "--input", str(tmp_path / "m.jsonl"), "--output",
                                    str(tmp_path / "runs"), "--set", f"ray.address={address}"),
                               env=env, capture_output=True, text=True, timeout=300)
        assert local.returncode == 2, local.stderr[-2000:]
        assert local.stderr.strip().splitlines()[-1].startswith(
            f"asr-batch: --input {tmp_path / 'm.jsonl'} is a path on this node, and the cluster has 2 nodes")
        assert not (tmp_path / "runs").exists()

        # file:// says every node mounts the folder (here both nodes share this machine's disk).
        proc = subprocess.Popen(_cli("run", "configs/local.yaml", "--input", f"file://{tmp_path / 'm.jsonl'}",
                                     "--output", f"file://{tmp_path / 'runs'}", "--run-id", "r",
                                     "--set", f"ray.address={address}", "--set", "stages.transcribe.max_actors=2",
                                     "--set", "stages.transcribe.batch_size=2", "--set", "stages.write.batch_size=2",
                                     "--set", "ray.capacity_wait_s=30"),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_first_part(run, proc)
        assert kill_worker_node(host).startswith("killed ")
        _check_finished(proc, run, ids)
