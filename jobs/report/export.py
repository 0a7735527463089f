"""``asr-batch export SOURCE --to DEST``: one table of transcripts, from a run folder or from an output root.

From a run folder: its rows, one per id. From a root holding runs: the current
transcripts of the bucket, the newest row per id over every complete run, an ok row
over an error row, for the ids still in the newest run's input listing (an object
deleted since drops out). Only the runs' Parquet is read, one run at a time, never the
audio. DEST (any fsspec URL) gets ``part-NNNNN.<format>`` files of at most
``EXPORT_PART_ROWS`` rows; parts of an earlier, larger export there are removed. Or,
with a per-file format (txt, srt, vtt, tsv), one ``DEST/<name>.<format>`` per ok row,
named after its id (:func:`jobs.report.format_names.id_names`) and written by
:mod:`jobs.report.formats`; error rows get no file and are counted. DEST ``-`` sends a text
table (jsonl, csv) to standard output, for a person or a pipe; ``columns`` keeps only
the named columns of a table.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.errors import AsrBatchError, redact
from asr_actor.schema import ERROR, ID, SEGMENTS, output_schema
from jobs.report.formats import PER_FILE_FORMATS, STDOUT_FORMATS, TABLE_FORMATS, encode, write_row
from asr_actor import storage
from jobs.state.history import PastRun, complete_runs, newest_rows
from jobs.report.format_names import id_names
from asr_actor.storage import Store
from jobs.state.run_folder import RunFolder

STDOUT = "-"  # DEST that means standard output
EXPORT_PART_ROWS = 100_000  # rows per written part
WRITE_THREADS = 16  # per-file formats: files written at once (object-store PUTs wait on the network)
FILE_BATCH_ROWS = 1_000  # per-file formats: rows turned into Python objects at a time


class ExportError(AsrBatchError):
    """Nothing to export, or a destination that cannot take it."""


def current_rows(root: str, store: Store = Store()) -> pa.Table:
    """The newest row per id (ok preferred) over the complete runs under ``root``, for ids still listed."""
    runs = complete_runs(root, store)
    if not runs:
        raise ExportError(f"{redact(root)}: no complete run here (a run folder with _SUCCESS)")
    rows = newest_rows(runs, prefer_ok=True)
    if rows is None:
        return output_schema().empty_table()
    present = runs[-1].folder.read_listing().column(ID).combine_chunks()
    return rows.filter(pc.is_in(rows.column(ID), value_set=present))


def selected_rows(source: str, store: Store = Store()) -> pa.Table:
    """SOURCE's one-row-per-id table, sorted by id: a run folder's rows, or an output root's current ones."""
    folder = RunFolder(source.rstrip("/"), store)
    if folder.exists():
        table = newest_rows([PastRun(folder, "")], prefer_ok=True) or output_schema().empty_table()
    else:
        table = current_rows(source.rstrip("/"), store)
    return table.sort_by([(ID, "ascending")])


def _write_parts(table: pa.Table, dest: str, fmt: str, store: Store) -> dict[str, Any]:
    names = []
    for number, lo in enumerate(range(0, max(table.num_rows, 1), EXPORT_PART_ROWS)):
        names.append(f"part-{number:05d}.{fmt}")
        store.write_bytes(storage.join(dest, names[-1]), encode(table.slice(lo, EXPORT_PART_ROWS), fmt))
    for old in store.list_files(dest, f".{fmt}"):
        if old.rsplit("/", 1)[-1].startswith("part-") and old.rsplit("/", 1)[-1] not in names:
            store.remove(old)
    return {"rows": table.num_rows, "parts": len(names)}


def _write_stdout(table: pa.Table, fmt: str) -> dict[str, Any]:
    """The rows as one text table on standard output, a part's rows at a time."""
    for lo in range(0, max(table.num_rows, 1), EXPORT_PART_ROWS):
        sys.stdout.buffer.write(encode(table.slice(lo, EXPORT_PART_ROWS), fmt, header=lo == 0))
    sys.stdout.buffer.flush()
    return {"rows": table.num_rows}


def _check(dest: str, fmt: str, columns: tuple[str, ...]) -> None:
    """Refuse, before anything is read, a DEST or ``columns`` that ``fmt`` cannot take."""
    if dest == STDOUT and fmt not in STDOUT_FORMATS:
        raise ExportError(f"--to {STDOUT} (standard output) takes --format {' or '.join(STDOUT_FORMATS)}, not {fmt}")
    if columns and fmt in PER_FILE_FORMATS:
        raise ExportError(f"--columns chooses the columns of a table ({', '.join(TABLE_FORMATS)}); {fmt} files have theirs")


def _select(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    missing = [name for name in columns if name not in table.column_names]
    if missing:
        raise ExportError(f"--columns: no column {', '.join(missing)} in these rows; they have {', '.join(table.column_names)}")
    return table.select(list(columns))


def _write_files(table: pa.Table, dest: str, fmt: str, store: Store) -> dict[str, Any]:
    """One file per ok row, named after its id; error rows get none and are counted."""
    if not table.num_rows:
        return {"rows": 0, "files": 0, "skipped_errors": 0}
    rows = table.filter(pc.is_null(table.column(ERROR))).select([ID, SEGMENTS])
    names = id_names(rows.column(ID).to_pylist())

    def write(item: tuple[dict[str, Any], str]) -> None:
        write_row(item[0], dest, item[1], (fmt,), store)

    with ThreadPoolExecutor(WRITE_THREADS) as pool:
        for lo in range(0, rows.num_rows, FILE_BATCH_ROWS):
            list(pool.map(write, zip(rows.slice(lo, FILE_BATCH_ROWS).to_pylist(), names[lo : lo + FILE_BATCH_ROWS])))
    return {"rows": table.num_rows, "files": rows.num_rows, "skipped_errors": table.num_rows - rows.num_rows}


def export(source: str, dest: str, fmt: str = "parquet", columns: tuple[str, ...] = (),
           store: Store = Store()) -> dict[str, Any]:
    """Write SOURCE's one-row-per-id table to DEST (parts, one file per ok row, or stdout); return the figures."""
    _check(dest, fmt, columns)
    started = time.perf_counter()
    table = selected_rows(source, store)
    if columns:
        table = _select(table, columns)
    if dest == STDOUT:
        figures = _write_stdout(table, fmt)
    elif fmt in PER_FILE_FORMATS:
        figures = _write_files(table, dest, fmt, store)
    else:
        figures = _write_parts(table, dest, fmt, store)
    return {**figures, "format": fmt, "to": redact(dest), "wall_s": round(time.perf_counter() - started, 2)}
