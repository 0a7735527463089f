"""``export``: the current table of an output root (runs folded, newest row per id) or of one run, to files or stdout."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from jobs.report.export import export
from jobs.state.run_folder import RunFolder


def _run(root, run_id, started, rows, listing):
    folder = RunFolder(str(root / run_id))
    folder.create({"run_id": run_id, "started_at": started}, pa.table({"id": listing, "uri": listing}))
    folder.write_part(pa.table(rows))
    folder.mark_complete({})
    return folder


def test_export_of_a_root_folds_runs_newest_ok_first_and_drops_deleted_ids(tmp_path):
    _run(tmp_path, "n1", "2026-11-01", {"id": ["a", "b", "c"], "text": ["a1", "b1", None], "error": [None, None, "decode: x"],
                                        "transcribed_at": ["1", "1", "1"]}, ["a", "b", "c"])
    _run(tmp_path, "n2", "2026-11-02", {"id": ["a", "b"], "text": ["a2", None], "error": [None, "fetch: gone"],
                                        "transcribed_at": ["2", "2"]}, ["a", "b"])  # c deleted since n1
    unfinished = RunFolder(str(tmp_path / "n3"))  # no _SUCCESS: not read
    unfinished.create({"run_id": "n3", "started_at": "2026-11-03"}, pa.table({"id": ["a"], "uri": ["a"]}))
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
