"""Incremental selection, the root lock and export's folding, on plain tables and folders (no cluster)."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pytest

from asr_actor.storage import Store
from jobs.report.export import export
from jobs.state.incremental import select
from jobs.store.source_info import with_source_info
from jobs.state.lock import RootLock, RootLocked
from jobs.state.run_folder import RunFolder


def _manifest(**changes):
    cols = {"id": ["a", "b", "c", "d", "e", "f"], "uri": [f"u/{x}" for x in "abcdef"],
            "size": [1, 2, 3, 4, 5, 6], "etag": ["A", "B", "C2", "D", "E", "F"], "speaker": ["x"] * 6}
    cols.update(changes)
    return pa.table(cols)


PAST = pa.table({
    "id": ["b", "c", "d", "e", "f"], "uri": ["u/b", "u/c", "u/d", "u/e", "u/f"],
    "error": [None, None, None, "decode: bad", "decode: bad"],
    "config_fingerprint": ["fp", "fp", "old", "fp", "fp"], "size": [2, 3, 4, 5, 6], "etag": ["B", "C", "D", "E", "F"],
    "attempt": pa.array([None, None, None, 1, 3], pa.int32()),
})


def test_each_input_is_taken_for_its_reason_or_left_unchanged():
    chosen = select(_manifest(), PAST, "fp", max_attempts=3)
    assert chosen.todo.select(["id", "reason", "attempt"]).to_pylist() == [
        {"id": "a", "reason": "new", "attempt": 1},  # no earlier row
        {"id": "c", "reason": "changed", "attempt": 1},  # another ETag
        {"id": "d", "reason": "model", "attempt": 1},  # ok, but another fingerprint
        {"id": "e", "reason": "retry", "attempt": 2},  # failed once
    ]
    assert chosen.unchanged == 2  # b is done; f failed 3 times and stays an error row
    assert chosen.reasons == {"new": 1, "changed": 1, "model": 1, "retry": 1}
    assert chosen.todo.column("speaker").to_pylist() == ["x"] * 4  # pass-through columns kept
    assert chosen.listing.column_names == ["id", "uri", "size", "etag"] and chosen.listing.num_rows == 6


def test_an_empty_root_is_a_full_run_and_unknown_sources_count_as_the_same():
    assert select(_manifest(), None, "fp", 3).reasons["new"] == 6
    older = PAST.drop_columns(["size", "etag"])  # a run that did not record sizes and ETags
    assert select(_manifest(), older, "fp", 3).reasons["changed"] == 0


def test_the_root_lock_refuses_a_second_job_and_a_stale_lock_needs_break(tmp_path):
    first = RootLock(str(tmp_path), "night-1", ttl_s=60, store=Store(1))
    first.acquire()
    second = RootLock(str(tmp_path), "night-2", ttl_s=60, store=Store(1))
    with pytest.raises(RootLocked, match=r"_LOCK: run night-1 on .* is running on this output root \(heartbeat 0 s ago\)"):
        second.acquire()
    first.release()
    assert not (tmp_path / "_LOCK").exists()
    second.acquire()  # free again
    held = json.loads((tmp_path / "_LOCK").read_text())
    held["heartbeat"] = time.time() - 120  # its job died two minutes ago
    (tmp_path / "_LOCK").write_text(json.dumps(held))
    third = RootLock(str(tmp_path), "night-3", ttl_s=60, store=Store(1))
    with pytest.raises(RootLocked, match="a stale lock of run night-2 .* run again with --break-lock"):
        third.acquire()
    third.acquire(break_stale=True)
    assert json.loads((tmp_path / "_LOCK").read_text())["run_id"] == "night-3"
    third.release()


def test_the_heartbeat_keeps_a_long_run_lock_fresh(tmp_path):
    lock = RootLock(str(tmp_path), "long", ttl_s=0.6, store=Store(1))
    lock.acquire()
    first = json.loads((tmp_path / "_LOCK").read_text())["heartbeat"]
    time.sleep(1.0)
    assert json.loads((tmp_path / "_LOCK").read_text())["heartbeat"] > first
    with pytest.raises(RootLocked, match="is running"):
        RootLock(str(tmp_path), "other", ttl_s=0.6, store=Store(1)).acquire()
    lock.release()


def _run(root, run_id, started, rows, listing):
    folder = RunFolder(str(root / run_id))
    folder.write_json("run.json", {"run_id": run_id, "started_at": started})
    folder.freeze_manifest(pa.table({"id": listing, "uri": listing}))
    folder.write_part(pa.table(rows))
    folder.write_json("_SUCCESS", {})
    return folder


def test_export_of_a_root_folds_runs_newest_ok_first_and_drops_deleted_ids(tmp_path):
    _run(tmp_path, "n1", "2026-11-01", {"id": ["a", "b", "c"], "text": ["a1", "b1", None], "error": [None, None, "decode: x"],
                                        "transcribed_at": ["1", "1", "1"]}, ["a", "b", "c"])
    _run(tmp_path, "n2", "2026-11-02", {"id": ["a", "b"], "text": ["a2", None], "error": [None, "fetch: gone"],
                                        "transcribed_at": ["2", "2"]}, ["a", "b"])  # c deleted since n1
    unfinished = RunFolder(str(tmp_path / "n3"))  # no _SUCCESS: not read
    unfinished.write_json("run.json", {"run_id": "n3", "started_at": "2026-11-03"})
    unfinished.write_part(pa.table({"id": ["a"], "text": ["a3"], "error": [None], "transcribed_at": ["3"]}))
    figures = export(str(tmp_path), str(tmp_path / "out"), "jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out" / "part-00000.jsonl").read_text().splitlines()]
    assert [(r["id"], r["text"]) for r in rows] == [("a", "a2"), ("b", "b1")]  # newest; ok over a later error
    assert figures["rows"] == 2 and figures["parts"] == 1
    export(str(tmp_path / "n1"), str(tmp_path / "one"), "csv")  # a run folder: its own rows
    assert (tmp_path / "one" / "part-00000.csv").read_text().splitlines()[1:] == ['"a","a1",,"1"', '"b","b1",,"1"',
                                                                                 '"c",,"decode: x","1"']


def test_export_to_stdout_keeps_the_chosen_columns_and_refuses_what_it_cannot_show(tmp_path, capsysbinary):
    from jobs.report.export import ExportError

    _run(tmp_path, "n1", "2026-11-01", {"id": ["a", "b", "c"], "text": ["a1", "", None], "error": [None, None, "decode: x"],
                                        "transcribed_at": ["1", "1", "1"]}, ["a", "b", "c"])
    figures = export(str(tmp_path / "n1"), "-", "jsonl", ("id", "text", "error"))
    assert [json.loads(line) for line in capsysbinary.readouterr().out.decode().splitlines()] == [
        {"id": "a", "text": "a1", "error": None}, {"id": "b", "text": "", "error": None},  # an empty transcript stays ""
        {"id": "c", "text": None, "error": "decode: x"}]
    assert figures["rows"] == 3 and figures["to"] == "-"
    export(str(tmp_path), "-", "csv", ("error", "id"))  # a root; columns in the order asked
    assert capsysbinary.readouterr().out.decode().splitlines() == ['"error","id"', ',"a"', ',"b"', '"decode: x","c"']
    with pytest.raises(ExportError, match=r"^--to - \(standard output\) takes --format jsonl or csv, not parquet$"):
        export(str(tmp_path), "-", "parquet")
    with pytest.raises(ExportError, match=r"^--columns: no column speaker in these rows; they have id, text, "):
        export(str(tmp_path), "-", "jsonl", ("id", "speaker"))
    with pytest.raises(ExportError, match=r"^--columns chooses the columns of a table"):
        export(str(tmp_path), str(tmp_path / "srt"), "srt", ("id",))
    assert not (tmp_path / "srt").exists()


def test_a_manifest_file_gets_size_and_etag_from_the_store(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"12345")
    table = with_source_info(pa.table({"id": ["x", "gone"], "uri": [str(tmp_path / "x.wav"), str(tmp_path / "no.wav")]}), Store(1))
    assert table.column("size").to_pylist() == [5, None]  # a missing object is left to fetch's error row
    assert table.column("etag").to_pylist()[0] and table.column("etag").to_pylist()[1] is None


def test_a_lock_left_by_a_killed_job_on_this_machine_is_taken_at_once(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    first = RootLock(str(tmp_path), "killed", ttl_s=600, store=Store(1))
    first.acquire()
    first._stop.set()
    held = json.loads((tmp_path / "_LOCK").read_text())
    (tmp_path / "_LOCK").write_text(json.dumps({**held, "pid": int(gone.stdout)}))  # a process that has exited
    again = RootLock(str(tmp_path), "resumed", ttl_s=600, store=Store(1))
    again.acquire()  # no --break-lock needed: the owner is certainly dead
    assert json.loads((tmp_path / "_LOCK").read_text())["run_id"] == "resumed"
    again.release()


def test_a_lock_the_store_will_not_let_go_is_left_with_a_warning_not_an_error(tmp_path, capsys):
    lock = RootLock(str(tmp_path), "r", ttl_s=600, store=Store(1))
    lock.acquire()
    (tmp_path / "_LOCK").unlink()
    (tmp_path / "_LOCK").mkdir()  # reading the lock now fails: the run's own outcome must still be what surfaces
    lock.release()
    err = capsys.readouterr().err
    assert "warning: could not remove the lock" in err and "goes stale" in err
