"""Nightly incremental runs over a changing bucket, export of the current transcripts, and the root lock.

A real S3 server (moto) and a real local Ray: night 1 over a prefix of good and bad
files; then files are added, overwritten and deleted; later nights take only what
changed, a new decoding option re-transcribes everything, a bad file stops being
retried after ``max_attempts``, a second job on the same root is refused, and a night
killed mid-run is resumed; ``export`` of the root always has one row per object present.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from asr_actor.wer import word_errors
import cli
from conftest import BAD, GOOD, reference_text
from servers import job_env, ray_stop, s3_client, s3_server

pytestmark = pytest.mark.slow
BUCKET = "asr-nightly"
ROOT = f"s3://{BUCKET}/runs"
NIGHT1 = {"g1.wav": GOOD / "wav16k_mono.wav", "g2.flac": GOOD / "flac16k_mono.flac", "g3.mp3": GOOD / "mp3_22k_mono.mp3",
          "g4.ogg": GOOD / "opus48k_mono.ogg", "g5.m4a": GOOD / "aac24k_mono.m4a",
          "b1.wav": BAD / "empty.wav", "b2.m4a": BAD / "text_file.m4a"}
ADDED = {"g6.mp4": GOOD / "video_with_audio.mp4", "g7.wav": GOOD / "wav44k_stereo.wav"}
OVERWRITTEN = ("g1.wav", GOOD / "wav44k_stereo.wav")  # other speech under the same key
DELETED = "g5.m4a"
LONG = {"g8.ogg": GOOD / "long_pauses.ogg", "g9.ogg": GOOD / "long_pauses.ogg"}  # 199 s each


@pytest.fixture(scope="module")
def bucket(asr_cache, offline_model_dir):
    with s3_server() as aws:
        env = job_env(aws, asr_cache)
        yield s3_client(aws, BUCKET), env
        ray_stop(env)


def _put(client, files):
    for name, path in files.items():
        client.put_object(Bucket=BUCKET, Key=f"audio/{name}", Body=path.read_bytes())


def _night(env, run_id, *sets, check=True):
    args = ["run", "configs/local.yaml", "--input", f"s3://{BUCKET}/audio/", "--output", ROOT, "--run-id", run_id,
            "--incremental", "--set", "incremental.max_attempts=2", *(a for s in sets for a in ("--set", s))]
    proc = cli.run(*args, env=env, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _json(client, key):
    return json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _export(client, env, dest) -> dict[str, dict]:
    proc = cli.run("export", ROOT, "--to", f"s3://{BUCKET}/{dest}", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{dest}/")["Contents"]]
    table = pa.concat_tables([pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())) for k in keys])
    rows = {r["id"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows  # one row per object
    return rows


def _taken(client, run_id):
    return _json(client, f"runs/{run_id}/run.json")["incremental"]


@pytest.fixture(scope="module")
def nights(bucket):
    """Nights 1 and 2 (with the bucket changed in between), shared by the tests below."""
    client, env = bucket
    _put(client, NIGHT1)
    first = _night(env, "n1")
    _put(client, ADDED)
    _put(client, dict([OVERWRITTEN]))
    client.delete_object(Bucket=BUCKET, Key=f"audio/{DELETED}")
    second = _night(env, "n2")
    return first, second


def test_night_two_takes_only_new_changed_and_failed_files(bucket, nights):
    client, env = bucket
    first, second = nights
    assert first.stdout.startswith("done: 5 ok, 2 failed, 0 skipped;")  # an empty root: a full run
    assert _taken(client, "n1") == {"unchanged": 0, "taken": {"new": 7, "changed": 0, "model": 0, "retry": 0}}
    assert second.stdout.startswith("done: 3 ok, 2 failed, 0 skipped, 3 unchanged;"), second.stdout
    assert _taken(client, "n2") == {"unchanged": 3, "taken": {"new": 2, "changed": 1, "model": 0, "retry": 2}}

    rows = _export(client, env, "export-2")
    assert sorted(rows) == sorted((set(NIGHT1) | set(ADDED)) - {DELETED})  # the deleted object dropped out
    assert rows["g1.wav"]["run_id"] == "n2" and rows["g1.wav"]["reason"] == "changed"
    assert word_errors(reference_text(OVERWRITTEN[1]), rows["g1.wav"]["text"]).wer < 0.3  # the new audio's words
    assert rows["g2.flac"]["run_id"] == "n1" and rows["b1.wav"]["attempt"] == 2 and rows["b1.wav"]["error"]


def test_a_new_decoding_option_retranscribes_all_and_bad_files_stop_at_max_attempts(bucket, nights):
    client, env = bucket
    third = _night(env, "n3", "decoding.num_beams=2")
    assert third.stdout.startswith("done: 6 ok, 0 failed, 0 skipped, 2 unchanged;"), third.stdout
    assert _taken(client, "n3")["taken"] == {"new": 0, "changed": 0, "model": 6, "retry": 0}
    rows = _export(client, env, "export-3")
    assert {r["run_id"] for n, r in rows.items() if n.startswith("g")} == {"n3"}
    assert rows["b2.m4a"]["run_id"] == "n2" and rows["b2.m4a"]["attempt"] == 2  # no third try


def test_a_second_job_on_the_root_is_refused_and_a_killed_night_resumes(bucket, nights):
    client, env = bucket
    _put(client, LONG)  # enough work that night 4 is still running when a second job comes and when it is killed
    args = ["run", "configs/local.yaml", "--input", f"s3://{BUCKET}/audio/", "--output", ROOT, "--run-id", "n4",
            "--incremental", "--set", "decoding.num_beams=3", "--set", "lock_ttl_s=3",
            "--set", "stages.transcribe.batch_size=2", "--set", "stages.write.batch_size=1"]
    proc = cli.start(*args, env=env, capture=False, new_session=True)
    deadline = time.monotonic() + 300
    while not client.list_objects_v2(Bucket=BUCKET, Prefix="runs/n4/data/").get("Contents"):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    other = _night(env, "n5", check=False)
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1].startswith(f"asr-batch: {ROOT}/_LOCK: run n4 on ")
    assert "is running on this output root" in other.stderr
    assert proc.poll() is None, "night 4 ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ray_stop(env)
    time.sleep(4)  # past lock_ttl_s: the dead night's lock is stale
    resumed = cli.run("resume", f"{ROOT}/n4", "--break-lock", env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not client.list_objects_v2(Bucket=BUCKET, Prefix="runs/_LOCK").get("Contents")  # released
    rows = _export(client, env, "export-4")
    assert sorted(rows) == sorted((set(NIGHT1) | set(ADDED) | set(LONG)) - {DELETED})
    assert {r["run_id"] for n, r in rows.items() if n.startswith("g")} == {"n4"}
