"""Storage faults on a real S3 server (moto) behind a TCP relay that can make it unreachable, with a real Ray.

The relay (``servers.Outage``) refuses and resets connections while it is down, as a
lost endpoint or network does; the server behind keeps its data.
"""

from __future__ import annotations

import io
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import cli
from conftest import GOOD
from servers import Outage, job_env, ray_stop, s3_client, s3_server

pytestmark = pytest.mark.slow
BUCKET = "asr-faults"
SHORT = ["wav16k_mono.wav", "flac16k_mono.flac", "mp3_22k_mono.mp3", "aac24k_mono.m4a", "opus48k_mono.ogg"]


@pytest.fixture
def store(asr_cache, offline_model_dir):
    """moto behind an Outage relay: (direct boto3 client, relay, job environment through the relay)."""
    with s3_server() as aws:
        relay = Outage(int(aws["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))
        relay.up()
        client = s3_client(aws, BUCKET)
        env = job_env({**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}"}, asr_cache)
        try:
            yield client, relay, env
        finally:
            relay.down()
            ray_stop(env)


def _upload(client, n: int) -> list[str]:
    keys = []
    for i in range(n):
        name = SHORT[i % len(SHORT)]
        keys.append(f"in/{i:02d}-{name}")
        client.put_object(Bucket=BUCKET, Key=keys[-1], Body=(GOOD / name).read_bytes())
    return keys


def _keys(client, prefix: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def _ids_in_s3(client, run: str) -> list[str]:
    parts = [k for k in _keys(client, f"{run}/data/") if k.endswith(".parquet")]
    body = lambda k: io.BytesIO(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())  # noqa: E731
    return [i for k in parts for i in pq.read_table(body(k), columns=["id"]).column("id").to_pylist()]


def _wait(condition, proc, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, "the job ended before the fault"
        assert time.monotonic() < deadline, "the fault point was not reached in time"
        time.sleep(0.1)


def test_an_s3_outage_mid_run_is_ridden_out(store):
    """Input and output on S3; the endpoint refuses every connection for 15 s after the first part."""
    client, relay, env = store
    keys = _upload(client, 10)
    proc = cli.start("run", "configs/local.yaml", "--input", f"s3://{BUCKET}/in/", "--output", f"s3://{BUCKET}/runs",
                     "--run-id", "r", "--set", "stages.write.batch_size=2", env=env)
    _wait(lambda: _keys(client, "runs/r/data/"), proc)
    relay.down()
    time.sleep(15)
    relay.up()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert out.startswith(f"done: {len(keys)} ok, 0 failed, 0 skipped"), out
    assert sorted(_ids_in_s3(client, "runs/r")) == sorted(f"s3://{BUCKET}/{k}" for k in keys)
    assert "Traceback" not in err


def test_input_unreachable_past_the_budget_gives_transient_rows_that_resume_retries(store, tmp_path):
    client, relay, env = store
    env = {**env, "AWS_MAX_ATTEMPTS": "1"}  # one try per client call: the job's own retry is what is tested
    keys = _upload(client, 4)
    run = tmp_path / "runs" / "r"
    proc = cli.start("run", "configs/local.yaml", "--input", f"s3://{BUCKET}/in/", "--output", str(tmp_path / "runs"),
                     "--run-id", "r", "--set", "storage.retry_s=2", env=env)
    _wait(lambda: (run / "run.json").exists(), proc)
    relay.down()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert out.startswith(f"done: 0 ok, {len(keys)} failed ({len(keys)} transient: resume retries them), 0 skipped"), out
    rows = pa.concat_tables([pq.read_table(p) for p in (run / "data").glob("part-*.parquet")]).to_pylist()
    assert {r["error_kind"] for r in rows} == {"transient"}
    assert all(r["error"].startswith(f"fetch: s3://{BUCKET}/in/") and "the store was unreachable" in r["error"] for r in rows)

    relay.up()
    ray_stop(env)
    done = cli.run("resume", str(run), env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"done: {len(keys)} ok, 0 failed, 0 skipped"), done.stdout
    final = pa.concat_tables([pq.read_table(p) for p in (run / "data").glob("part-*.parquet")])
    assert sorted(final.column("id").to_pylist()) == sorted(f"s3://{BUCKET}/{k}" for k in keys)  # once each
    assert final.column("error").null_count == final.num_rows
    assert json.loads((run / "_SUCCESS").read_text())["run_failed"] == 0


def test_output_unreachable_past_the_budget_stops_with_one_line_then_resume_finishes(store, tmp_path):
    client, relay, env = store
    env = {**env, "AWS_MAX_ATTEMPTS": "1"}
    lines = [json.dumps({"id": f"rec-{i}", "uri": str(GOOD / SHORT[i % len(SHORT)])}) for i in range(10)]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    run = f"s3://{BUCKET}/runs/w"
    proc = cli.start("run", "configs/local.yaml", "--input", str(tmp_path / "m.jsonl"), "--output", f"s3://{BUCKET}/runs",
                     "--run-id", "w", "--set", "storage.retry_s=2", "--set", "stages.write.batch_size=2",
                     "--set", "stages.transcribe.batch_size=2", env=env)
    _wait(lambda: _keys(client, "runs/w/data/"), proc)
    relay.down()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("asr-batch: the run stopped: StoreUnavailable: s3://") and "the store was unreachable" in last
    assert last.endswith(f"asr-batch resume {run}") and "Traceback" not in err
    assert not _keys(client, "runs/w/_SUCCESS")

    relay.up()
    ray_stop(env)
    done = cli.run("resume", run, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(_ids_in_s3(client, "runs/w")) == sorted(f"rec-{i}" for i in range(10))
