"""``ray job submit`` to a ``ray start --head`` cluster on 127.0.0.1, over the S3 server."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BAD, GOOD
from servers import BIN, job_env, ray_head, s3_client, s3_server

pytestmark = pytest.mark.slow
BUCKET = "asr-submit-test"
ROOT = Path(__file__).resolve().parent.parent


def test_ray_job_submit_runs_the_job(asr_cache, offline_model_dir):
    with s3_server() as aws:
        s3 = s3_client(aws, BUCKET)
        for p in (GOOD / "flac16k_mono.flac", GOOD / "opus48k_mono.ogg", BAD / "text_file.m4a"):
            s3.put_object(Bucket=BUCKET, Key=f"in/{p.name}", Body=p.read_bytes())
        env = job_env(aws, asr_cache)
        with ray_head(env) as address:
            submit = [
                str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT), "--",
                sys.executable, "-m", "jobs.cli", "run", "configs/local.yaml",
                "--input", f"s3://{BUCKET}/in/", "--output", f"s3://{BUCKET}/runs", "--run-id", "submitted",
            ]
            proc = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "done: 2 ok, 1 failed, 0 skipped" in proc.stdout
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/submitted/data/")["Contents"]]
        table = pa.concat_tables(
            [pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())) for k in keys]
        )
    rows = {r["id"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}
    assert sorted(rows) == ["flac16k_mono.flac", "opus48k_mono.ogg", "text_file.m4a"]
    assert "corrupt file should never stop" in rows["flac16k_mono.flac"]["text"].lower()
    assert rows["text_file.m4a"]["error"].startswith("decode: not a readable audio container")
