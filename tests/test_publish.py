"""Publishing runs to an Iceberg table (``--publish``, ``asr-batch publish``): the table is a view of the run folders.

Run folders are built synthetically (as in test_export.py) for the table's rules, published
through the real Ray Data Iceberg writer on a local Ray into pyiceberg's SQL catalog (SQLite,
a local warehouse or one on the loopback S3 server); after each publish the table must equal
``export ROOT``'s current rows. One end-to-end test runs the real job with the offline tiny.en.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

import cli
from asr_actor.config import ConfigError
from asr_actor.schema import output_schema
from conftest import BAD, GOOD
from jobs.report.export import current_rows
from jobs.state.run_folder import PUBLISHED, RunFolder
from servers import S3_SECRET, job_env, ray_stop, s3_client, s3_server

COMPARED = ["id", "text", "error", "run_id"]
TABLE = "iceberg://local/asr.transcripts"
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


def _night(root, run_id, day, rows, listing, taken=None, extra=None):
    """A complete run folder: ``rows`` {id: (text, error)}; ``listing`` every input seen; ``taken`` the manifest
    (default: the listing; otherwise an incremental-like run with a listing.parquet); ``extra`` pass-through columns."""
    taken = listing if taken is None else taken
    manifest = pa.table({"id": taken, "uri": [f"s3://b/{i}" for i in taken], **{k: [v] * len(taken) for k, v in (extra or {}).items()}})
    folder = RunFolder(str(root / run_id))
    listed = None if taken is listing else pa.table({"id": listing, "uri": [f"s3://b/{i}" for i in listing]})
    folder.create({"run_id": run_id, "started_at": (T0 + timedelta(days=day)).isoformat()}, manifest, listed)
    schema = output_schema(manifest.schema)
    ids = list(rows)
    columns = {f.name: pa.nulls(len(ids), f.type) for f in schema}
    columns.update(id=pa.array(ids, pa.string()), uri=pa.array([f"s3://b/{i}" for i in ids], pa.string()),
                   text=pa.array([rows[i][0] for i in ids], pa.string()), error=pa.array([rows[i][1] for i in ids], pa.string()),
                   error_kind=pa.array(["permanent" if rows[i][1] else None for i in ids], pa.string()),
                   run_id=pa.array([run_id] * len(ids), pa.string()),
                   transcribed_at=pa.array([T0 + timedelta(days=day)] * len(ids), pa.timestamp("us", tz="UTC")),
                   **{k: pa.array([v] * len(ids), pa.string()) for k, v in (extra or {}).items()})
    folder.write_part(pa.table(columns, schema=schema))
    folder.mark_complete({"rows": len(ids)})
    return folder


def _nights(root):
    """Three nights: a full run; an incremental-like one (changed, new, retried-now-ok, now-an-error, gone); a full one."""
    yield _night(root, "n1", 0, {"a": ("a1", None), "b": ("b1", None), "c": (None, "decode: bad"), "d": ("d1", None),
                                 "e": ("e1", None), "f": (None, "fetch: 404")}, list("abcdef"))
    yield _night(root, "n2", 1, {"b": ("b2", None), "c": ("c2", None), "d": (None, "fetch: timeout"), "f": (None, "fetch: 404"),
                                 "g": ("g2", None), "h": (None, "decode: bad")},
                 list("abcdfgh"), taken=list("bcdfgh"), extra={"reason": "new"})  # e deleted; a unchanged
    yield _night(root, "n3", 2, {"a": (None, "decode: x"), "b": ("b3", None), "c": ("c3", None), "g": ("g3", None),
                                 "h": ("h3", None)}, list("abcgh"))  # d, f deleted; a now an error: its ok row stays


def _table(catalog_name="local", root=None, properties=None):
    from pyiceberg.catalog import load_catalog

    props = properties or {"type": "sql", "uri": f"sqlite:///{root}/_iceberg/catalog.db",
                           "warehouse": f"file://{root}/_iceberg/warehouse"}
    return load_catalog(catalog_name, **props).load_table("asr.transcripts")


def _rows(table: pa.Table) -> list[dict]:
    return table.select(COMPARED).sort_by("id").to_pylist()


@pytest.mark.parametrize("value", ["iceberg:/x", "delta://local/asr.t", "iceberg://local/transcripts", "iceberg://local/"])
def test_a_bad_publish_target_is_one_config_error_line(value):
    from jobs.config import load_config

    with pytest.raises(ConfigError) as caught:
        load_config(None, input="in/", output="out/", publish=value)
    assert str(caught.value) == f"publish: {value!r} is not iceberg://CATALOG/NAMESPACE.TABLE (e.g. {TABLE})"
    assert load_config(None, input="in/", output="out/", publish=TABLE).publish == TABLE


@contextmanager
def _silent_server():
    """A TCP server on loopback that accepts connections and never answers: a catalog that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@pytest.mark.slow
def test_a_job_publishes_at_its_end_and_a_killed_or_failed_publish_is_caught_up(tmp_path, asr_cache, offline_model_dir):
    import ray

    if ray.is_initialized():  # ray_stop below stops every Ray of this machine
        ray.shutdown()
    audio, root = tmp_path / "audio", tmp_path / "runs"
    audio.mkdir()
    for source in (GOOD / "wav16k_mono.wav", GOOD / "flac16k_mono.flac", BAD / "empty.wav"):
        shutil.copy(source, audio / source.name)
    broken = "iceberg://broken/asr.transcripts"  # a SQL catalog whose SQLite file cannot be made, then can
    env = job_env({"PYICEBERG_CATALOG__BROKEN__TYPE": "sql",
                   "PYICEBERG_CATALOG__BROKEN__URI": f"sqlite:///{tmp_path}/no/such/folder/catalog.db"}, asr_cache)
    fixed = {**env, "PYICEBERG_CATALOG__BROKEN__URI": f"sqlite:///{tmp_path}/catalog.db",
             "PYICEBERG_CATALOG__BROKEN__WAREHOUSE": f"file://{tmp_path}/warehouse"}
    job = ["run", "configs/local.yaml", "--input", str(audio), "--output", str(root), "--set", "incremental.max_attempts=1"]
    try:
        with _silent_server() as hanging:  # r1's publish hangs after _SUCCESS: the job is killed there
            proc = cli.start(*job, "--run-id", "r1", "--publish", broken, capture=False, new_session=True,
                             env={**env, "PYICEBERG_CATALOG__BROKEN__TYPE": "rest", "PYICEBERG_CATALOG__BROKEN__URI": hanging})
            deadline = time.monotonic() + 300
            while not (root / "r1" / "_SUCCESS").exists():
                assert proc.poll() is None and time.monotonic() < deadline, "the job ended before its parts were complete"
                time.sleep(0.1)
            time.sleep(2)  # into the publish, which waits on the silent catalog
            assert proc.poll() is None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        ray_stop(env)
        assert not (root / "r1" / PUBLISHED).exists()
        resumed = cli.run("resume", str(root / "r1"), env=fixed)  # complete, not published: resume publishes it
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert set(json.loads((root / "r1" / PUBLISHED).read_text())) == {broken}

        failed = cli.run(*job, "--run-id", "r2", "--incremental", "--publish", broken, env=env)
        assert failed.returncode == 2 and "Traceback" not in failed.stderr
        line = failed.stderr.strip().splitlines()[-1]
        assert line.startswith(f"asr-batch: the run is complete, but publishing it failed: {broken}: cannot open catalog 'broken'")
        assert line.endswith(f"; fix the cause, then: asr-batch publish {root}/r2"), line
        assert (root / "r2" / "_SUCCESS").exists() and not (root / "r2" / PUBLISHED).exists()
        published = cli.run("publish", str(root / "r2"), env=fixed)  # the table recorded in r2's run.json
        assert published.returncode == 0, published.stderr[-3000:]
        figures = json.loads(published.stdout)
        assert figures["runs"] == [str(root / "r2")] and figures["table"] == broken

        third = cli.run(*job, "--run-id", "r3", "--incremental", "--publish", TABLE, env=env)  # nothing new to do
        assert third.returncode == 0, third.stderr[-3000:]
        for run, tables in (("r1", {broken, TABLE}), ("r2", {broken, TABLE}), ("r3", {TABLE})):  # caught up, in order
            assert set(json.loads((root / run / PUBLISHED).read_text())) == tables, run
        snapshots = len(_table(root=root).snapshots())
        again = cli.run("resume", str(root / "r3"), env=env)  # complete and published: nothing to publish again
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(_table(root=root).snapshots()) == snapshots
        status = cli.run("status", str(root), env=env)
        assert status.returncode == 0 and "r3" in status.stdout and "_iceberg" not in status.stdout, status.stderr
    finally:
        ray_stop(env)
    table = _table(root=root)
    rows = table.scan().to_arrow()
    assert _rows(rows) == _rows(current_rows(str(root)))
    assert sorted(r["id"].rsplit("/", 1)[-1] for r in rows.to_pylist()) == ["empty.wav", "flac16k_mono.flac", "wav16k_mono.wav"]
    con = table.scan().to_duckdb("transcripts")
    assert con.execute("SELECT count(*), count(text), min(run_id) FROM transcripts WHERE error IS NULL").fetchone() == (2, 2, "r1")
    assert con.execute("SELECT error FROM transcripts WHERE id LIKE '%empty.wav'").fetchone()[0].startswith("decode: ")
    assert _rows(_table("broken", properties={"type": "sql", "uri": fixed["PYICEBERG_CATALOG__BROKEN__URI"],
                                              "warehouse": fixed["PYICEBERG_CATALOG__BROKEN__WAREHOUSE"]}).scan().to_arrow()) \
        == _rows(rows)


@pytest.mark.slow
def test_three_nights_published_to_a_local_sql_catalog_equal_export(tmp_path, local_ray):
    from jobs.report.publish import publish_pending

    for number, folder in enumerate(_nights(tmp_path), 1):
        figures = publish_pending(str(tmp_path), TABLE)
        assert [f["run"] for f in figures] == [folder.uri]
        table = _table(root=tmp_path)
        assert _rows(table.scan().to_arrow()) == _rows(current_rows(str(tmp_path))), f"night {number}"
        assert folder.published()[TABLE]["snapshot_id"] == table.current_snapshot().snapshot_id
    (last,) = figures
    assert [last["rows_upserted"], last["error_rows_kept_ok"], last["ids_deleted"]] == [4, 1, 2]  # night 3: a's error kept out
    assert "reason" in table.schema().column_names  # night 2's pass-through column evolved the schema
    rows = {r["id"]: r for r in _rows(table.scan().to_arrow())}
    assert rows["a"]["text"] == "a1" and rows["a"]["run_id"] == "n1" and not {"d", "e", "f"} & set(rows)
    proc = cli.run("status", str(tmp_path))  # the _iceberg folder under the root is no run folder
    assert proc.returncode == 0, proc.stderr
    assert "n3" in proc.stdout and "_iceberg" not in proc.stdout


@pytest.mark.slow
def test_publishing_again_is_harmless_and_a_root_is_caught_up_in_order(tmp_path, local_ray):
    from jobs.report.publish import publish_command, publish_run

    n1, n2, n3 = _nights(tmp_path)
    figures = publish_command(str(tmp_path), TABLE)  # a root with three unpublished complete runs: one call
    assert figures["runs"] == [n1.uri, n2.uri, n3.uri] and figures["ids_deleted"] == 3
    table = _table(root=tmp_path)
    assert _rows(table.scan().to_arrow()) == _rows(current_rows(str(tmp_path)))
    before, snapshots = _rows(table.scan().to_arrow()), len(table.snapshots())
    assert publish_command(str(tmp_path), TABLE)["runs"] == []  # each run's _PUBLISHED names the table: nothing to do
    assert len(_table(root=tmp_path).snapshots()) == snapshots
    publish_run(n3, TABLE)  # published again anyway: the same table, one snapshot more at most
    table = _table(root=tmp_path)
    assert _rows(table.scan().to_arrow()) == before and len(table.snapshots()) <= snapshots + 1
    marker = json.loads((tmp_path / "n3" / PUBLISHED).read_text())
    assert set(marker) == {TABLE} and marker[TABLE]["table"] == TABLE and marker[TABLE]["published_at"]


@pytest.mark.slow
def test_three_nights_with_the_warehouse_on_s3_configured_as_pyiceberg_reads_it(tmp_path, local_ray, monkeypatch):
    from jobs.report.publish import publish_pending

    with s3_server() as aws:
        s3_client(aws, "lake")
        catalog = {"TYPE": "sql", "URI": f"sqlite:///{tmp_path}/lake.db", "WAREHOUSE": "s3://lake/warehouse",
                   "S3__ENDPOINT": aws["AWS_ENDPOINT_URL"], "S3__ACCESS_KEY_ID": aws["AWS_ACCESS_KEY_ID"],
                   "S3__SECRET_ACCESS_KEY": aws["AWS_SECRET_ACCESS_KEY"], "S3__REGION": aws["AWS_DEFAULT_REGION"]}
        for key, value in catalog.items():
            monkeypatch.setenv(f"PYICEBERG_CATALOG__LAKE__{key}", value)
        target = "iceberg://lake/asr.transcripts"
        properties = {"type": "sql", "uri": catalog["URI"], "warehouse": catalog["WAREHOUSE"],
                      "s3.endpoint": catalog["S3__ENDPOINT"], "s3.access-key-id": catalog["S3__ACCESS_KEY_ID"],
                      "s3.secret-access-key": S3_SECRET, "s3.region": catalog["S3__REGION"]}
        for number, folder in enumerate(_nights(tmp_path / "runs"), 1):
            figures = publish_pending(str(tmp_path / "runs"), target)
            assert S3_SECRET not in json.dumps(figures) + (tmp_path / "runs" / folder.uri.rsplit("/", 1)[-1] / PUBLISHED).read_text()
            table = _table("lake", properties=properties)
            assert _rows(table.scan().to_arrow()) == _rows(current_rows(str(tmp_path / "runs"))), f"night {number}"
        keys = [o["Key"] for o in s3_client(aws).list_objects_v2(Bucket="lake", Prefix="warehouse/")["Contents"]]
        assert any(k.endswith(".parquet") for k in keys) and any(k.endswith(".metadata.json") for k in keys)
        assert not (tmp_path / "runs" / "_iceberg").exists()  # a configured catalog: no embedded one
