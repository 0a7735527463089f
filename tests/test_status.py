"""``asr-batch status``: run folders built with the project's own RunFolder, schema and lock (no Ray)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from asr_actor.storage import Store
from asr_actor.config import AudioConfig
from asr_actor.schema import output_schema, to_table
from jobs.cli import main
from jobs.config import config_to_dict, load_config
from jobs.report.error_causes import causes, top_causes
from jobs.store.fetch import fetch_batch
from jobs.state.lock import RootLock
from jobs.state.run_folder import RunFolder, summarize
from jobs.report.status import status
from jobs.report.status_text import format_status

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
EMPTY = pa.array([], pa.string())


def _run(root, run_id, n_files, started=T0, ttl_s=300):
    """A run folder as ``run`` freezes it: run.json with the recorded config, and an ``n_files`` manifest."""
    folder = RunFolder(str(root / run_id))
    cfg = load_config(None, [f"lock_ttl_s={ttl_s}"], input="s3://bucket/audio/", output=str(root), run_id=run_id)
    ids = [f"f{i:03d}" for i in range(n_files)]
    folder.create({"run_id": run_id, "started_at": started.isoformat(), "config": config_to_dict(cfg)},
                  pa.table({"id": ids, "uri": [f"s3://bucket/audio/{i}.wav" for i in ids]}))
    return folder


def _part(folder, ids, when, error=None, kind=None, duration_s=30.0):
    """One part as the writer makes it: every row stamped with the part's time."""
    n = len(ids)
    errors = error if isinstance(error, list) else [error] * n
    rows = {"id": ids, "uri": [f"s3://bucket/audio/{i}.wav" for i in ids],
            "text": [None if e else "hello" for e in errors], "error": errors, "error_kind": [kind if e else None for e in errors],
            "duration_s": [None if e else duration_s for e in errors]}
    stamp = {"model": "m", "config_fingerprint": "fp", "run_id": folder.uri.rsplit("/", 1)[-1]}
    folder.write_part(to_table(rows, output_schema(None), stamp, when))


def _holder(lock) -> str:
    """How status names a lock this test process holds: its host and pid, and the heartbeat's age it reports."""
    return f"{socket.gethostname()} (pid {os.getpid()}), heartbeat {round(lock['heartbeat_age_s'])} s ago"


def _finish(folder, when):
    folder.deduplicate()
    folder.mark_complete({**summarize(folder.keys(), EMPTY), "finished_at": when.isoformat()})


def test_a_finished_run(tmp_path):
    folder = _run(tmp_path, "n1", 4)
    _part(folder, ["f000", "f001"], T0 + timedelta(minutes=5))
    _part(folder, ["f002"], T0 + timedelta(minutes=6))
    _part(folder, ["f003"], T0 + timedelta(minutes=7), "decode: no audio stream", "permanent")
    _finish(folder, T0 + timedelta(minutes=8))
    f = status(folder.uri, now=T0 + timedelta(hours=1))
    assert (f["state"], f["resume"], f["rate"], f["eta_s"]) == ("complete", None, None, None)
    assert (f["manifest_rows"], f["ok"], f["failed"], f["permanent"], f["remaining"]) == (4, 3, 1, 1, 0)
    assert f["audio_hours"] == round(90 / 3600, 4)
    assert f["started_at"] == T0.isoformat() and f["finished_at"] == (T0 + timedelta(minutes=8)).isoformat()
    assert f["last_part_at"] == (T0 + timedelta(minutes=7)).isoformat() and f["last_part_age_s"] == 53 * 60
    assert format_status(f).splitlines() == [
        f"run        n1  {folder.uri}",
        "state      complete, finished 2026-11-27 09:08:00Z",
        "started    2026-11-27 09:00:00Z",
        "files      4 in the manifest: 3 ok, 1 failed, 0 remaining",
        "audio      0.025 h transcribed",  # 3 ok rows of 30 s
        "last part  2026-11-27 09:07:00Z, 53 min ago",  # seen at 10:00
        "errors     1  decode: no audio stream  (e.g. id f003)"]


def test_a_killed_run_is_incomplete_and_says_how_to_resume(tmp_path):
    folder = _run(tmp_path, "n2", 10)
    _part(folder, ["f000", "f001", "f002"], T0 + timedelta(minutes=1))
    _part(folder, ["f003"], T0 + timedelta(minutes=2), "fetch: s3://bucket/audio/f003.wav: the store was unreachable "
          "through 5 tries in 120 s (ConnectionRefusedError: Connection refused)", "transient")
    f = status(folder.uri, now=T0 + timedelta(minutes=30))
    assert f["state"] == "incomplete" and f["lock"] is None
    assert (f["ok"], f["failed"], f["transient"], f["remaining"]) == (3, 1, 1, 6)
    assert f["resume"] == f"asr-batch resume {folder.uri}" and f["rate"] is None
    assert format_status(f).splitlines() == [
        f"run        n2  {folder.uri}",
        f"state      incomplete (not running): asr-batch resume {folder.uri} finishes it",
        "started    2026-11-27 09:00:00Z",
        "files      10 in the manifest: 3 ok, 1 failed (1 transient: resume retries them), 6 remaining",
        "audio      0.025 h transcribed",  # 3 ok rows of 30 s
        "last part  2026-11-27 09:02:00Z, 28 min ago",  # seen at 09:30
        "errors     1  fetch: the store was unreachable through … tries in … s (ConnectionRefusedError: Connection "
        "refused)  (e.g. id f003)"]

    lock = RootLock(str(tmp_path), "n2", ttl_s=300, store=Store(1))  # its job died holding the lock: 10 minutes silent
    lock.acquire()
    try:
        lock._stop.set()
        held = json.loads((tmp_path / "_LOCK").read_text())
        (tmp_path / "_LOCK").write_text(json.dumps({**held, "heartbeat": held["heartbeat"] - 600}))
        stale = status(folder.uri)
        assert stale["state"] == "incomplete" and stale["lock"]["live"] is False and stale["lock"]["run_id"] == "n2"
        assert stale["resume"] == f"asr-batch resume {folder.uri} --break-lock"
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        (tmp_path / "_LOCK").write_text(json.dumps({**held, "pid": int(gone.stdout)}))  # killed here a moment ago
        killed = status(folder.uri)
        assert killed["state"] == "incomplete" and killed["lock"]["live"] is False  # fresh heartbeat, dead owner
    finally:
        lock.release()


def test_a_running_run_has_a_rate_and_an_eta(tmp_path):
    folder = _run(tmp_path, "n3", 100)
    lock = RootLock(str(tmp_path), "n3", ttl_s=300, store=Store(1))
    lock.acquire()
    try:
        now = datetime.now(timezone.utc)
        _part(folder, [f"f{i:03d}" for i in range(10)], now - timedelta(minutes=20))  # before the window
        for k, seconds in enumerate((90, 60, 30, 0)):  # 10 files of 30 s audio each 30 s: 1/3 files/s, RTFx 10
            _part(folder, [f"f{i:03d}" for i in range(10 + 10 * k, 20 + 10 * k)], now - timedelta(seconds=seconds))
        f = status(folder.uri, now=now + timedelta(seconds=5))
        assert f["state"] == "running" and f["lock"]["live"] and f["resume"] is None
        assert (f["ok"], f["remaining"], f["last_part_age_s"]) == (50, 50, 5.0)
        assert f["rate"] == {"files_per_s": 0.333, "rtfx": 10.0, "window_s": 90.0, "files": 30}
        assert f["eta_s"] == 150.0
        assert f["eta_at"] == (now + timedelta(seconds=5 + f["eta_s"])).isoformat()
        assert f["lock"]["heartbeat_age_s"] >= 5  # taken before ``now``, read 5 s after it
        when = lambda t: t.strftime("%Y-%m-%d %H:%M:%SZ")  # noqa: E731
        assert format_status(f).splitlines() == [
            f"run        n3  {folder.uri}",
            f"state      running on {_holder(f['lock'])}",
            "started    2026-11-27 09:00:00Z",
            "files      100 in the manifest: 50 ok, 0 failed, 50 remaining",
            "audio      0.4167 h transcribed",  # 50 ok rows of 30 s: 1500 s
            f"last part  {when(now)}, 5 s ago",
            "rate       0.33 files/s, RTFx 10 (the last 90 s of parts)",
            f"eta        2 min 30 s, {when(now + timedelta(seconds=5 + 150))}"]  # 50 files left at 1/3 file/s
    finally:
        lock.release()


def test_an_output_root_has_one_line_per_run_and_its_lock_holder(tmp_path):
    done = _run(tmp_path, "night-1", 3, started=T0)
    _part(done, ["f000", "f001", "f002"], T0 + timedelta(minutes=1))
    _finish(done, T0 + timedelta(minutes=2))
    killed = _run(tmp_path, "night-2", 3, started=T0 + timedelta(days=1))
    _part(killed, ["f000"], T0 + timedelta(days=1, minutes=1), "fetch: object not found: s3://bucket/audio/f000.wav",
          "permanent")
    live = _run(tmp_path, "night-3", 5, started=T0 + timedelta(days=2))
    _part(live, ["f000", "f001"], T0 + timedelta(days=2, minutes=1))
    (tmp_path / "not-a-run").mkdir()  # a folder without run.json is not listed
    lock = RootLock(str(tmp_path), "night-3", ttl_s=300, store=Store(1))
    lock.acquire()
    try:
        f = status(str(tmp_path))
    finally:
        lock.release()
    assert f["kind"] == "root" and f["lock"]["run_id"] == "night-3" and f["lock"]["live"]
    assert [(r["run_id"], r["state"], r["ok"], r["failed"], r["remaining"]) for r in f["runs"]] == [
        ("night-1", "complete", 3, 0, 0), ("night-2", "incomplete", 0, 1, 2), ("night-3", "running", 2, 0, 3)]
    lines = format_status(f).splitlines()
    assert lines == [  # started; finished (night-1) or the last part
        f"root       {tmp_path}",
        f"lock       run night-3 on {_holder(f['lock'])} (live)",
        "RUN      STATE       OK  FAILED  REMAINING  STARTED               FINISHED / LAST PART",
        "night-1  complete     3       0          0  2026-11-27 09:00:00Z  2026-11-27 09:02:00Z",
        "night-2  incomplete   0       1          2  2026-11-28 09:00:00Z  2026-11-28 09:01:00Z",
        "night-3  running      2       0          3  2026-11-29 09:00:00Z  2026-11-29 09:01:00Z"]


def test_errors_are_grouped_by_cause_without_the_per_file_part(tmp_path):
    folder = _run(tmp_path, "n4", 8)
    (tmp_path / "big.wav").write_bytes(b"\0" * 2_000)
    (tmp_path / "huge.wav").write_bytes(b"\0" * 3_000)
    fetched = fetch_batch({"uri": [str(tmp_path / "gone 1.wav"), str(tmp_path / "gone2.wav"), str(tmp_path / "g3.wav"),
                                   str(tmp_path / "big.wav"), str(tmp_path / "huge.wav")]}, AudioConfig(max_bytes=1_000))
    _part(folder, ["f005", "f001", "f002", "f003", "f004"], T0, fetched["error"], "permanent")
    _part(folder, ["f006", "f007"], T0, ["decode: truncated data at 3.20 s", "decode: truncated data at 0.50 s"],
          "permanent")
    f = status(folder.uri, now=T0)
    assert f["errors"] == [
        {"cause": "fetch: object not found", "count": 3, "example_id": "f001"},
        {"cause": "decode: truncated data at … s", "count": 2, "example_id": "f006"},
        {"cause": "fetch: … is … bytes, over the … byte limit", "count": 2, "example_id": "f003"},
    ]
    assert f["error_causes"] == 3 and f["failed"] == 7
    assert format_status(f).splitlines()[3:] == [
        "files      8 in the manifest: 0 ok, 7 failed, 1 remaining",
        "audio      0 h transcribed",
        "last part  2026-11-27 09:00:00Z, 0 s ago",
        "errors     3  fetch: object not found  (e.g. id f001)",  # the lowest id of each cause is its example
        "           2  decode: truncated data at … s  (e.g. id f006)",
        "           2  fetch: … is … bytes, over the … byte limit  (e.g. id f003)"]
    shown, total = top_causes(folder.keys(), limit=1)
    assert total == 3 and [s["cause"] for s in shown] == ["fetch: object not found"]


def test_a_cause_drops_uris_paths_quoted_values_and_numbers():
    errors = pa.array([
        "fetch: object not found: s3://AKIA:secret@b/x.wav",
        "fetch: s3://b/y.wav: the store was unreachable through 7 tries in 120 s (ConnectionRefusedError: refused)",
        "fetch: cannot read gs://b/z.wav (OSError: [Errno 5] Input/output error)",
        "decode: InvalidDataError: [Errno 1094995529] Invalid data found when processing input: '/data/x.wav'",
        "transcribe: model m does not know language 'xx'", "decode: no audio stream", None,
    ])
    assert causes(errors).to_pylist() == [
        "fetch: object not found",
        "fetch: the store was unreachable through … tries in … s (ConnectionRefusedError: refused)",
        "fetch: cannot read … (OSError: [Errno …] Input/output error)",
        "decode: InvalidDataError: [Errno …] Invalid data found when processing input",
        "transcribe: model m does not know language …", "decode: no audio stream", None,
    ]


def test_a_row_written_twice_is_counted_once(tmp_path):
    folder = _run(tmp_path, "n5", 5)
    _part(folder, ["f000", "f001"], T0)
    _part(folder, ["f001", "f002"], T0 + timedelta(seconds=10))  # a retried task wrote f001 again
    _part(folder, ["f003"], T0, "fetch: the store was unreachable", "transient")
    _part(folder, ["f003"], T0 + timedelta(seconds=20))  # resume: ok now; the transient row is not counted
    f = status(folder.uri, now=T0 + timedelta(minutes=1))
    assert (f["ok"], f["failed"], f["transient"], f["remaining"], f["duplicate_rows"]) == (4, 0, 0, 1, 2)
    assert f["audio_hours"] == round(4 * 30 / 3600, 4)
    assert format_status(f).splitlines()[3:5] == [
        "files      5 in the manifest: 4 ok, 0 failed, 1 remaining; duplicates in data/: 2 (counted once)",
        "audio      0.0333 h transcribed"]  # f000 to f003 once each: 120 s


def test_the_cli_prints_json_and_a_path_that_is_no_run_is_one_line_and_exit_2(tmp_path, capsys):
    folder = _run(tmp_path, "n6", 2)
    _part(folder, ["f000"], T0)
    assert main(["status", folder.uri, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert list(figures) == [
        "kind", "run_id", "uri", "state", "resume", "started_at", "finished_at", "last_part_at", "last_part_age_s",
        "manifest_rows", "ok", "failed", "transient", "permanent", "remaining", "duplicate_rows", "audio_hours",
        "rate", "eta_s", "eta_at", "lock", "errors", "error_causes"]
    assert (figures["run_id"], figures["state"], figures["ok"], figures["remaining"]) == ("n6", "incomplete", 1, 1)
    assert main(["status", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (lines[0], lines[1]) == (f"root       {tmp_path}", "lock       none")
    assert [line.split() for line in lines[3:]] == [  # id, state, ok, failed, remaining, started, last part
        ["n6", "incomplete", "1", "0", "1", "2026-11-27", "09:00:00Z", "2026-11-27", "09:00:00Z"]]
    nothing = tmp_path / "n6" / "data"  # a folder, but neither a run nor a root of runs
    assert main(["status", str(nothing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"asr-batch: {nothing}: neither a run folder (no run.json) nor an output root "
                            "holding run folders\n")
    assert main(["status", str(tmp_path / "missing"), "--json"]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"asr-batch: {tmp_path / 'missing'}: neither a run folder (no run.json) "
                                                "nor an output root holding run folders\n")


@pytest.mark.slow  # starts an S3 server
def test_status_reads_runs_on_s3(tmp_path, monkeypatch, capsys):
    from servers import S3_SECRET, s3_client, s3_server

    with s3_server() as aws:
        for name, value in aws.items():
            monkeypatch.setenv(name, value)
        s3_client(aws, "bucket")
        root = "s3://bucket/runs"
        done = RunFolder(f"{root}/night-1")
        done.create({"run_id": "night-1", "started_at": T0.isoformat()},
                    pa.table({"id": ["f000", "f001"], "uri": ["s3://bucket/audio/f000.wav"] * 2}))
        _part(done, ["f000"], T0)
        _part(done, ["f001"], T0, "fetch: object not found: s3://bucket/audio/f001.wav", "permanent")
        killed = _run(tmp_path, "night-2", 3)  # built locally, then copied up as it is
        _part(killed, ["f000"], T0 + timedelta(days=1))
        client = s3_client(aws)
        for path in (tmp_path / "night-2").rglob("*"):
            if path.is_file():
                client.upload_file(str(path), "bucket", f"runs/{path.relative_to(tmp_path)}")
        _finish(done, T0 + timedelta(minutes=1))
        lock = RootLock(root, "night-2", ttl_s=300, store=Store(1))
        lock.acquire()  # the conditional PUT of a real S3 API
        try:
            assert main(["status", root, "--json"]) == 0
            figures = json.loads(capsys.readouterr().out)
            assert main(["status", f"{root}/night-2/"]) == 0
            text = capsys.readouterr().out
        finally:
            lock.release()
    assert [(r["run_id"], r["state"], r["ok"], r["failed"], r["remaining"]) for r in figures["runs"]] == [
        ("night-1", "complete", 1, 1, 0), ("night-2", "running", 1, 0, 2)]
    assert figures["uri"] == root and figures["lock"]["run_id"] == "night-2"
    lines = text.splitlines()
    assert lines[0] == f"run        night-2  {root}/night-2"
    assert lines[1].startswith(f"state      running on {socket.gethostname()} (pid {os.getpid()}), heartbeat ")
    assert lines[2:5] == ["started    2026-11-27 09:00:00Z", "files      3 in the manifest: 1 ok, 0 failed, 2 remaining",
                          "audio      0.0083 h transcribed"]  # one ok row of 30 s
    assert lines[5].startswith("last part  2026-11-28 09:00:00Z, ")  # so many hours ago: it depends on today
    assert lines[6:] == ["rate       not yet known (fewer than two parts)"]
    assert S3_SECRET not in text + json.dumps(figures)
