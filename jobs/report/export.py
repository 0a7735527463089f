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

Two engines compute the table, one result (:mod:`jobs.report.engines`): this process,
or a Ray Data job (:mod:`jobs.report.current_table`) that writes one part per id range
from its workers.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.errors import AsrBatchError, redact
from asr_actor.schema import ERROR, ID, SEGMENTS, output_schema
from jobs.report.formats import PER_FILE_FORMATS, STDOUT_FORMATS, TABLE_FORMATS, encode, write_row
from asr_actor import storage
from jobs.state.history import PastRun, complete_runs, newest_rows
from jobs.report.current_table import BUCKET, Listing, current_table, schema_of, total_rows
from jobs.report.engines import choose
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


def _part_name(number: int, fmt: str) -> str:
    return f"part-{number:05d}.{fmt}"


def _write_parts(table: pa.Table, dest: str, fmt: str, store: Store) -> dict[str, Any]:
    names = []
    for number, lo in enumerate(range(0, max(table.num_rows, 1), EXPORT_PART_ROWS)):
        names.append(_part_name(number, fmt))
        store.write_bytes(storage.join(dest, names[-1]), encode(table.slice(lo, EXPORT_PART_ROWS), fmt))
    _remove_other_parts(dest, fmt, names, store)
    return {"rows": table.num_rows, "parts": len(names)}


def _remove_other_parts(dest: str, fmt: str, names: list[str], store: Store) -> None:
    """Parts an earlier, larger export left in ``dest``: those not in ``names``."""
    for old in store.list_files(dest, f".{fmt}"):
        if old.rsplit("/", 1)[-1].startswith("part-") and old.rsplit("/", 1)[-1] not in names:
            store.remove(old)


def _write_stdout(tables: Iterable[pa.Table], fmt: str) -> dict[str, Any]:
    """The rows as one text table on standard output, a slice of rows at a time."""
    rows = 0
    for table in tables:
        for lo in range(0, max(table.num_rows, 1), EXPORT_PART_ROWS):
            sys.stdout.buffer.write(encode(table.slice(lo, EXPORT_PART_ROWS), fmt, header=rows == 0 and lo == 0))
        rows += table.num_rows
    sys.stdout.buffer.flush()
    return {"rows": rows}


def _check(dest: str, fmt: str, columns: tuple[str, ...]) -> None:
    """Refuse, before anything is read, a DEST or ``columns`` that ``fmt`` cannot take."""
    if dest == STDOUT and fmt not in STDOUT_FORMATS:
        raise ExportError(f"--to {STDOUT} (standard output) takes --format {' or '.join(STDOUT_FORMATS)}, not {fmt}")
    if columns and fmt in PER_FILE_FORMATS:
        raise ExportError(f"--columns chooses the columns of a table ({', '.join(TABLE_FORMATS)}); {fmt} files have theirs")


def _check_columns(names: list[str], columns: tuple[str, ...]) -> None:
    missing = [name for name in columns if name not in names]
    if missing:
        raise ExportError(f"--columns: no column {', '.join(missing)} in these rows; they have {', '.join(names)}")


def _select(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    return table.select(list(columns)) if columns else table


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


def _export_local(source: str, dest: str, fmt: str, columns: tuple[str, ...], store: Store) -> dict[str, Any]:
    table = selected_rows(source, store)
    _check_columns(table.column_names, columns)
    table = _select(table, columns)
    if dest == STDOUT:
        return _write_stdout([table], fmt)
    if fmt in PER_FILE_FORMATS:
        return _write_files(table, dest, fmt, store)
    return _write_parts(table, dest, fmt, store)


def _runs_of(source: str, store: Store) -> tuple[list[PastRun], Listing]:
    """The runs SOURCE's table is made of, and the listing that keeps its ids (none for a run folder)."""
    folder = RunFolder(source.rstrip("/"), store)
    if folder.exists():
        return [PastRun(folder, "")], Listing(None, store)
    runs = complete_runs(source.rstrip("/"), store)
    if not runs:
        raise ExportError(f"{redact(source)}: no complete run here (a run folder with _SUCCESS)")
    return runs, Listing(runs[-1].folder.listing_uri(), store)


def _bucket_part(rows: pa.Table, number: int, *, dest: str, fmt: str, columns: tuple[str, ...],
                 store: Store) -> dict[str, Any]:
    """The Ray engine's writer of a table format: bucket ``number``'s rows as part ``number``."""
    store.write_bytes(storage.join(dest, _part_name(number, fmt)), encode(_select(rows, columns), fmt))
    return {"bucket": number, "rows": rows.num_rows}


def _bucket_files(rows: pa.Table, number: int, *, dest: str, fmt: str, store: Store) -> dict[str, Any]:
    """The Ray engine's writer of a per-file format: a file per ok row of bucket ``number``."""
    return {"bucket": number, **_write_files(rows, dest, fmt, store)}


_ORDER = "__order"  # the Ray engine's rows for standard output: their place in their bucket


def _bucket_rows(rows: pa.Table, number: int, *, columns: tuple[str, ...]) -> pa.Table:
    """The Ray engine's rows for standard output: passed on, with their bucket and place for the order."""
    return (_select(rows, columns).append_column(BUCKET, pa.array(np.full(rows.num_rows, number, np.int32)))
            .append_column(_ORDER, pa.array(np.arange(rows.num_rows, dtype=np.int64))))


def _export_ray(source: str, dest: str, fmt: str, columns: tuple[str, ...], store: Store) -> dict[str, Any]:
    from jobs.config import RayConfig
    from jobs.run.ray_cluster import init_ray

    runs, listing = _runs_of(source, store)
    schema = schema_of(runs)
    _check_columns(schema.names if len(schema) else list(output_schema().names), columns)
    init_ray(RayConfig())
    if dest == STDOUT:
        rows = current_table(runs, listing, schema, partial(_bucket_rows, columns=columns), store)
        if rows is None:
            return _write_stdout([], fmt)
        ordered = rows.sort([BUCKET, _ORDER]).iter_batches(batch_format="pyarrow")
        return _write_stdout((batch.drop_columns([BUCKET, _ORDER]) for batch in ordered), fmt)
    if fmt in PER_FILE_FORMATS:
        write = partial(_bucket_files, dest=dest, fmt=fmt, store=store)
    else:
        write = partial(_bucket_part, dest=dest, fmt=fmt, columns=columns, store=store)
    figures = current_table(runs, listing, schema, write, store)
    figures = [] if figures is None else figures.take_all()
    if fmt in PER_FILE_FORMATS:
        return {key: sum(f[key] for f in figures) for key in ("rows", "files", "skipped_errors")}
    names = [_part_name(f["bucket"], fmt) for f in figures]
    _remove_other_parts(dest, fmt, names, store)
    return {"rows": sum(f["rows"] for f in figures), "parts": len(names)}


def _engine(source: str, engine: str, store: Store) -> str:
    return engine if engine in ("local", "ray") else choose(engine, total_rows(_runs_of(source, store)[0]))


def export(source: str, dest: str, fmt: str = "parquet", columns: tuple[str, ...] = (),
           store: Store = Store(), engine: str = "auto") -> dict[str, Any]:
    """Write SOURCE's one-row-per-id table to DEST (parts, one file per ok row, or stdout); return the figures.

    ``engine``: one of :data:`jobs.report.engines.ENGINES`.
    """
    _check(dest, fmt, columns)
    started = time.perf_counter()
    engine = _engine(source, engine, store)
    figures = (_export_ray if engine == "ray" else _export_local)(source, dest, fmt, columns, store)
    return {**figures, "format": fmt, "to": redact(dest), "engine": engine,
            "wall_s": round(time.perf_counter() - started, 2)}
