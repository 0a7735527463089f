"""The whole job on a real local Ray over a real S3 server: good, bad and missing inputs."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from asr_actor.sampling import SEEDING
from asr_actor.storage import Store
from asr_actor.schema import output_schema
from asr_actor.wer import word_errors
import cli
from conftest import BAD, cpu_dtype, good_fixtures, reference_text
from servers import S3_SECRET, job_env, ray_stop, s3_client, s3_server

pytestmark = pytest.mark.slow
BUCKET = "asr-job-test"
CONFIG = "configs/local.yaml"


@pytest.fixture(scope="module")
def s3(asr_cache, offline_model_dir):
    with s3_server() as aws:
        # The job's workers find the session's converted offline model in ASR_BATCH_CACHE.
        yield s3_client(aws, BUCKET), job_env(aws, asr_cache)


def _put_manifest(client, rows: list[dict], key: str) -> str:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    client.put_object(Bucket=BUCKET, Key=key, Body=sink.getvalue())
    return f"s3://{BUCKET}/{key}"


def _read_run(client, prefix: str) -> tuple[pa.Table, list[pa.Schema]]:
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/data/")["Contents"]]
    tables = [pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())) for k in keys]
    return pa.concat_tables(tables), [t.schema for t in tables]


def _run(env, *args, timeout=600):
    return cli.run(*args, env=env, timeout=timeout)


BAD_NAMES = ["empty.wav", "truncated.flac", "random_bytes.wav", "text_file.m4a", "no_audio_stream.mp4"]


@pytest.fixture(scope="module")
def e2e(s3):
    """One run over S3: every good fixture, the bad corpus and a missing object."""
    client, env = s3
    rows = []
    for p in good_fixtures() + [BAD / n for n in BAD_NAMES]:
        client.put_object(Bucket=BUCKET, Key=f"audio/{p.name}", Body=p.read_bytes())
        rows.append({"id": p.stem, "uri": f"audio/{p.name}", "speaker": "slt", "take": len(rows)})
    rows.append({"id": "missing", "uri": "audio/does-not-exist.wav", "speaker": None, "take": 99})
    manifest = _put_manifest(client, rows, "manifest.parquet")

    proc = _run(env, "run", CONFIG, "--input", manifest, "--output", f"s3://{BUCKET}/runs", "--run-id", "r1",
                "--set", "stages.write.batch_size=4")
    ray_stop(env)
    return rows, proc


def test_s3_end_to_end_good_bad_and_missing(s3, e2e):
    client, env = s3
    rows, proc = e2e
    bad = BAD_NAMES
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"done: {len(good_fixtures())} ok, {len(bad) + 1} failed, 0 skipped")
    assert "progress:" in proc.stderr
    for text in (proc.stdout, proc.stderr):
        assert S3_SECRET not in text

    table, schemas = _read_run(client, "runs/r1")
    expected = output_schema(pa.schema([("id", pa.string()), ("uri", pa.string()), ("speaker", pa.string()), ("take", pa.int64())]))
    assert all(s.remove_metadata().equals(expected) for s in schemas)  # one schema for ok and error rows
    by_id = {r["id"]: r for r in table.to_pylist()}
    assert sorted(by_id) == sorted(r["id"] for r in rows) and table.num_rows == len(rows)
    for p in good_fixtures():
        row = by_id[p.stem]
        assert row["error"] is None and row["language"] == "en" and row["run_id"] == "r1"
        assert word_errors(reference_text(p), row["text"]).wer <= 0.2
        assert row["uri"] == f"s3://{BUCKET}/audio/{p.name}" and row["speaker"] == "slt"
    for name in bad:
        row = by_id[name.rsplit(".", 1)[0]]
        assert row["text"] is None and row["error"].startswith("decode: "), row
    assert by_id["missing"]["error"] == f"fetch: object not found: s3://{BUCKET}/audio/does-not-exist.wav"

    run_json = client.get_object(Bucket=BUCKET, Key="runs/r1/run.json")["Body"].read().decode()
    assert S3_SECRET not in run_json and "asr-test-key" not in run_json
    info = json.loads(run_json)
    assert info["config"]["model"]["id"] == "offline:tiny.en" and info["versions"]["ray"]
    assert info["sampling"] == SEEDING  # how fallback passes were seeded
    assert info["lock"]["lock"] and info["lock"]["differs"] == {}  # the run says it ran on the locked versions
    planned = info["model"]
    assert (planned["device"], planned["dtype"], planned["attention"]) == ("cpu", cpu_dtype(), "sdpa")
    assert planned["log_mel"]["n_mels"] == 80 and info["fingerprint_inputs"]["model"]["weights_id"] == planned["weights_id"]
    assert set(table.column("config_fingerprint").to_pylist()) == {info["config_fingerprint"]}
    success = json.loads(client.get_object(Bucket=BUCKET, Key="runs/r1/_SUCCESS")["Body"].read())
    assert (success["ok"], success["failed"], success["rows"]) == (len(good_fixtures()), len(bad) + 1, len(rows))


def test_job_level_failures_exit_nonzero_with_one_line(s3, tmp_path):
    client, env = s3
    dup = _put_manifest(client, [{"id": "a", "uri": "x.wav"}, {"id": "a", "uri": "y.wav"}], "dup.parquet")
    proc = _run(env, "run", CONFIG, "--input", dup, "--output", f"s3://{BUCKET}/runs", "--run-id", "dup")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"asr-batch: s3://{BUCKET}/dup.parquet: duplicate ids (1), e.g. ['a']"
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix="runs/dup/")
    proc = _run(env, "resume", f"s3://{BUCKET}/runs/never-ran")
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr


def test_evaluate_reports_wer_per_row_and_overall(s3, e2e, tmp_path):
    client, env = s3
    refs = tmp_path / "refs.jsonl"
    refs.write_text("".join(json.dumps({"id": p.stem, "text": reference_text(p)}) + "\n" for p in good_fixtures()))
    proc = _run(env, "evaluate", f"s3://{BUCKET}/runs/r1", "--references", str(refs))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    per_row, (english,), overall = lines[:-2], lines[-2:-1], lines[-1]
    assert sorted(r["id"] for r in per_row) == sorted(p.stem for p in good_fixtures())
    assert overall["files"] == len(good_fixtures()) and 0 < overall["wer"] < 0.1 and "cer" not in overall
    assert english == {"language": "en", "metric": "wer", "wer": overall["wer"], "errors": english["errors"],
                       "words": overall["words"], "files": overall["files"]}
    assert sum(r["errors"] for r in per_row) / sum(r["words"] for r in per_row) == pytest.approx(overall["wer"], abs=1e-4)
    missing = _run(env, "evaluate", f"s3://{BUCKET}/runs/r1", "--references", str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "cannot read references" in missing.stderr


@pytest.fixture
def s3_in_process(s3, monkeypatch):
    """The S3 server's client, with this process's environment pointed at it (for in-process calls)."""
    client, env = s3
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, env[key])
    return client


def test_model_loads_from_an_object_store_folder(s3_in_process, offline_model_dir, tmp_path):
    from asr_actor.config import ModelConfig
    from asr_actor.model import load_model
    from asr_actor.model_plan import plan_model

    client = s3_in_process
    for f in offline_model_dir.iterdir():
        client.put_object(Bucket=BUCKET, Key=f"models/tiny-en/{f.name}", Body=f.read_bytes())
    client.put_object(Bucket=BUCKET, Key="models/tiny-en/pytorch_model.bin", Body=b"pickles are never fetched")
    cfg = ModelConfig(id=f"s3://{BUCKET}/models/tiny-en/", cache_dir=str(tmp_path))
    # The driver plans from the folder's JSON files and its weights' ETags: nothing is copied.
    plan = plan_model(cfg, gpus=False)
    assert plan.log_mel.n_mels == 80 and not plan.multilingual and not (tmp_path / "remote-models").exists()
    assert plan_model(cfg, gpus=False).weights_id == plan.weights_id
    loaded = load_model(cfg)
    assert loaded.info.model_id == cfg.id and loaded.model.config.d_model == 384
    copies = list((tmp_path / "remote-models").iterdir())
    assert len(copies) == 1 and (copies[0] / "model.safetensors").is_file()
    assert not (copies[0] / "pytorch_model.bin").exists()
    assert load_model(cfg).info.model_id == cfg.id  # second load: the local copy, nothing fetched again


def test_prefix_listing_streams_page_by_page(s3_in_process):
    from jobs.store.manifest import s3_objects

    client = s3_in_process
    for i in range(5):
        client.put_object(Bucket=BUCKET, Key=f"pages/{i}.wav", Body=b"x" * (i + 1))
    listed = list(s3_objects(f"s3://{BUCKET}/pages/", store=Store(5), page=2))  # three pages
    assert [(u, size) for u, size, _ in listed] == [(f"s3://{BUCKET}/pages/{i}.wav", i + 1) for i in range(5)]
    assert all(len(tag) == 32 for _, _, tag in listed)  # the ETag, unquoted


def test_a_manifest_files_sources_get_size_and_etag_by_listing_or_head(s3_in_process, monkeypatch):
    from jobs.store import source_info

    client = s3_in_process
    for i in range(3):
        client.put_object(Bucket=BUCKET, Key=f"info/{i}.wav", Body=b"x" * (i + 1))
    uris = [f"s3://{BUCKET}/info/{i}.wav" for i in (0, 1, 2, 9)]  # 9 does not exist
    manifest = pa.table({"id": ["a", "b", "c", "d"], "uri": uris})
    listed = source_info.with_source_info(manifest, store=Store(2))
    monkeypatch.setattr(source_info, "LIST_BUDGET", 0)  # listing costs too much: one HEAD per object
    monkeypatch.setattr(source_info, "S3_PAGE", 0)
    headed = source_info.with_source_info(manifest, store=Store(2))
    for table in (listed, headed):
        assert table.column("size").to_pylist() == [1, 2, 3, None]
    assert listed.column("etag").to_pylist() == headed.column("etag").to_pylist()  # both ways name the same ETag
    assert listed.column("etag").null_count == 1
