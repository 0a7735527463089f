"""Workers and nodes lost mid-run: the job recovers by itself, every id exactly once, never hangs.

On a local cluster the tests SIGKILL the model actor mid-batch, and in one run the CPU
worker with the writer, then the writer alone, then the progress tally. The node test
runs on a real two-node cluster (Ray's ``Cluster`` harness: two raylets on this
machine) whose head is held busy at the start, so that every worker of the job lands
on the worker node, and SIGKILLs every process of that node while its CPU worker and
model actor work: the job finishes on the 2 CPUs of the head alone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

import cli
from conftest import BAD, GOOD
from servers import cluster_command, job_env, ray_stop, two_node_cluster

pytestmark = pytest.mark.slow
SHORT = ["wav16k_mono.wav", "flac16k_mono.flac", "mp3_22k_mono.mp3", "aac24k_mono.m4a", "opus48k_mono.ogg"]
HEAD_CPUS, WORKER_CPUS = 2, 3  # the worker node holds the whole job; the head alone, one model actor and one CPU worker
NO_PROGRESS_S = 120  # ray.no_progress_timeout_s in these runs: a recovery must come sooner than that


def _manifest(tmp: Path, n: int = 16) -> list[str]:
    ids = [f"rec-{i:03d}" for i in range(n)] + ["bad-empty"]
    uris = [str(GOOD / SHORT[i % len(SHORT)]) for i in range(n)] + [str(BAD / "empty.wav")]
    (tmp / "m.jsonl").write_text("".join(json.dumps({"id": i, "uri": u}) + "\n" for i, u in zip(ids, uris)))
    return ids


def _ids(run: Path) -> list[str]:
    return [i for p in sorted((run / "data").glob("part-*.parquet")) for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]


def _parts(run: Path) -> int:
    return len(list((run / "data").glob("part-*.parquet"))) if (run / "data").is_dir() else 0


def _wait_parts(run: Path, proc: subprocess.Popen, more_than: int = 0, timeout_s: float = 300) -> int:
    """Wait until ``run`` has more than ``more_than`` parts (while the job runs); return how many."""
    deadline = time.monotonic() + timeout_s
    while _parts(run) <= more_than:
        assert proc.poll() is None, "the job ended before the fault"
        assert time.monotonic() < deadline, "no part landed in time"
        time.sleep(0.1)
    return _parts(run)


def _processes(*classes: str) -> list[psutil.Process]:
    """The Ray worker processes whose title names one of ``classes`` (Ray Data's ``ray::MapWorker(...)``)."""
    titles = {p: " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])}
    return [p for p, title in titles.items() if title.startswith("ray::") and any(c in title for c in classes)]


def _kill(name: str, proc: subprocess.Popen, wait_s: float = 120) -> None:
    """SIGKILL the ``name`` actor's process, once there is one (while the job runs)."""
    deadline = time.monotonic() + wait_s
    while not (found := _processes(name)):
        assert proc.poll() is None and time.monotonic() < deadline, f"no {name} process to kill"
        time.sleep(0.1)
    for target in found:
        target.send_signal(signal.SIGKILL)


@pytest.fixture
def env(asr_cache, offline_model_dir):
    e = job_env({}, asr_cache)
    yield e
    ray_stop(e)


def _check_finished(proc: subprocess.Popen, run: Path, ids: list[str], recoveries: int = 1) -> str:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-4000:]
    assert "lost a worker or node" in err and f"recovery {recoveries} of " in err, err[-4000:]
    assert f"recovery {recoveries + 1} of " not in err, err[-4000:]
    assert sorted(_ids(run)) == sorted(ids)  # every id, exactly once, with no manual resume
    success = json.loads((run / "_SUCCESS").read_text())
    assert success["run_failed"] == 1 and success["ok"] + success["failed"] + success["skipped"] == len(ids)
    return out


def _local_job(tmp_path: Path, env, *sets: str) -> subprocess.Popen:
    return cli.start("run", "configs/local.yaml", "--input", str(tmp_path / "m.jsonl"), "--output", str(tmp_path / "runs"),
                     "--run-id", "r", "--set", "stages.transcribe.batch_size=2", "--set", "stages.write.batch_size=2",
                     "--set", f"ray.no_progress_timeout_s={NO_PROGRESS_S}", *(x for s in sets for x in ("--set", s)),
                     env=env)


def test_a_killed_model_actor_is_recovered_from(env, tmp_path):
    ids = _manifest(tmp_path)
    run = tmp_path / "runs" / "r"
    proc = _local_job(tmp_path, env)
    _wait_parts(run, proc)
    _kill("TranscribeWorker", proc)  # mid-batch: it had more files to do
    _check_finished(proc, run, ids)


def test_killed_cpu_worker_writer_and_tally_are_recovered_from_without_waiting(env, tmp_path):
    """The kills that hung Ray Data's pools of one (a dead idle actor is never replaced): each ends its attempt at once."""
    ids = _manifest(tmp_path, 30)
    run = tmp_path / "runs" / "r"
    started = time.monotonic()
    proc = _local_job(tmp_path, env, "stages.prepare.batch_size=1")
    _kill("PrepareWorker", proc)  # busy: preparing the first files (at idle priority, while the model loads)
    parts = _wait_parts(run, proc)  # recovered: the new attempt wrote a part
    _kill("WriteWorker", proc)  # after its first part, idle until the next batch of rows
    parts = _wait_parts(run, proc, parts)
    _kill("WindowTally", proc)  # only the window count of the progress line: no recovery
    _check_finished(proc, run, ids, recoveries=2)
    took = time.monotonic() - started
    assert took < NO_PROGRESS_S * 2, f"{took:.0f} s: an attempt waited for the no-progress timeout"


def test_a_lost_worker_node_is_recovered_from_on_the_two_cpus_left(env, tmp_path):
    ids = _manifest(tmp_path)
    run = tmp_path / "runs" / "r"
    with two_node_cluster(env, HEAD_CPUS, WORKER_CPUS) as (address, host):
        # A plain local path, on a cluster of several nodes, is refused before anything is written.
        local = cli.run("run", "configs/local.yaml", "--input", str(tmp_path / "m.jsonl"), "--output",
                        str(tmp_path / "runs"), "--set", f"ray.address={address}", env=env, timeout=300)
        assert local.returncode == 2, local.stderr[-2000:]
        assert local.stderr.strip().splitlines()[-1].startswith(
            f"asr-batch: --input {tmp_path / 'm.jsonl'} is a path on this node, and the cluster has 2 nodes")
        assert not (tmp_path / "runs").exists()

        assert cluster_command(host, "hold-head") == "held"  # every worker of the job goes to the worker node
        # file:// says every node mounts the folder (here both nodes share this machine's disk).
        proc = cli.start("run", "configs/local.yaml", "--input", f"file://{tmp_path / 'm.jsonl'}",
                         "--output", f"file://{tmp_path / 'runs'}", "--run-id", "r",
                         "--set", f"ray.address={address}", "--set", "stages.transcribe.num_cpus=1",
                         "--set", "stages.transcribe.batch_size=2", "--set", "stages.write.batch_size=2",
                         "--set", "ray.capacity_wait_s=30", "--set", f"ray.no_progress_timeout_s={NO_PROGRESS_S}", env=env)
        killed = cluster_command(host, "kill-worker PrepareWorker TranscribeWorker")  # as soon as both work there
        assert killed.startswith("killed ") and {"PrepareWorker", "TranscribeWorker"} <= set(killed.split(": ")[1].split(", "))
        _check_finished(proc, run, ids)  # 2 CPUs left: one model actor and one CPU worker, the writer's share down to 0
