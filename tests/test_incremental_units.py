"""Incremental selection: which inputs a nightly run takes and why, and the sizes and ETags it compares (no cluster)."""

from __future__ import annotations

import pyarrow as pa

from asr_actor.storage import Store
from jobs.state.incremental import select
from jobs.store.source_info import with_source_info


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


def test_a_manifest_file_gets_size_and_etag_from_the_store(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"12345")
    table = with_source_info(pa.table({"id": ["x", "gone"], "uri": [str(tmp_path / "x.wav"), str(tmp_path / "no.wav")]}), Store(1))
    assert table.column("size").to_pylist() == [5, None]  # a missing object is left to fetch's error row
    assert table.column("etag").to_pylist()[0] and table.column("etag").to_pylist()[1] is None
