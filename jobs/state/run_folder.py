"""The run folder, the unit of resume (see DESIGN.md, "Run folder").

    <output>/<run_id>/run.json           config (no secrets), the planned model (weights, device, dtype,
                                         attention, features), fingerprint and its inputs, versions, start
                      manifest.parquet   exactly this run's inputs; resume reads it, never the original
                      data/part-*.parquet  transcript rows; each part whole or absent
                      listing.parquet    (incremental runs) every input seen; the manifest holds those taken
                      _SUCCESS           written last: ok / failed / skipped counts, audio and wall seconds

Exactly once: ids present in ``data/`` are done and are not planned again; a part is
written whole or not at all; and :meth:`RunFolder.deduplicate` (run before
``_SUCCESS``) removes the second copy of any id that a retried task wrote twice.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asr_actor.schema import COLUMN_TYPES, DURATION, ERROR, ERROR_KIND, ID, TRANSIENT
from asr_actor import storage
from jobs.state.arrow_ops import first_of_each, flag
from asr_actor.storage import Store

PART_SUFFIX = ".parquet"
RUN_JSON = "run.json"  # the run's record, written when it is planned: its folder is a run folder
SUCCESS = "_SUCCESS"  # written last: the run is complete
LISTING = "listing.parquet"  # an incremental run's whole input listing


_KEYS = (ID, ERROR, ERROR_KIND, DURATION)  # what resume, dedupe and the summary read of each row
_PART, _ROW = "__part", "__row"


class RunFolder:
    """One run's folder on any fsspec storage: its JSON files, frozen manifest and Parquet parts.

    Every storage call goes through ``store`` (its retries).
    """

    def __init__(self, uri: str, store: Store = Store()) -> None:
        self.uri, self.store = uri.rstrip("/"), store

    def path(self, *parts: str) -> str:
        return storage.join(self.uri, *parts)

    @property
    def data(self) -> str:
        return self.path("data")

    def exists(self) -> bool:
        return self.store.exists(self.path(RUN_JSON))

    def write_json(self, name: str, obj: dict[str, Any]) -> None:
        self.store.write_bytes(self.path(name), (json.dumps(obj, indent=2, default=str) + "\n").encode())

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads(self.store.read_bytes(self.path(name)))

    def freeze_manifest(self, table: pa.Table) -> None:
        self.store.write_bytes(self.path("manifest.parquet"), _parquet_bytes(table))

    def read_manifest(self, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(io.BytesIO(self.store.read_bytes(self.path("manifest.parquet"))), columns=columns)

    def parts(self) -> list[str]:
        names = self.store.list_files(self.data, PART_SUFFIX)
        return [p for p in names if p.rsplit("/", 1)[-1].startswith("part-")]

    def read_part(self, uri: str, columns: list[str] | None = None) -> pa.Table:
        """One part; of ``columns``, those it has (parts of older runs lack newer nullable columns)."""
        source = io.BytesIO(self.store.read_bytes(uri))
        if columns is not None:
            present = set(pq.read_schema(source).names)
            columns = [c for c in columns if c in present]
        return pq.read_table(source, columns=columns)

    def write_part(self, table: pa.Table) -> str:
        uri = storage.join(self.data, f"part-{uuid.uuid4().hex}{PART_SUFFIX}")
        self.store.write_bytes(uri, _parquet_bytes(table))
        return uri

    def read_all(self, columns: list[str] | None = None) -> pa.Table:
        """Every row in ``data/`` (of ``columns``, those present); parts of older runs may lack newer columns."""
        tables = [self.read_part(p, columns) for p in self.parts()]
        return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({ID: pa.array([], pa.string())})

    def complete(self) -> bool:
        return self.store.exists(self.path(SUCCESS))

    def freeze_listing(self, table: pa.Table) -> None:
        """An incremental run's whole input listing (its manifest holds only the rows it takes)."""
        self.store.write_bytes(self.path(LISTING), _parquet_bytes(table))

    def read_listing(self) -> pa.Table:
        """The inputs this run saw: the listing of an incremental run, else the manifest."""
        if self.store.exists(self.path(LISTING)):
            return pq.read_table(io.BytesIO(self.store.read_bytes(self.path(LISTING))))
        return self.read_manifest()

    def keys(self, parts: list[str] | None = None, extra: Sequence[str] = ()) -> pa.Table:
        """id, error, error kind and duration (and the ``extra`` columns) of every row in ``data/``,
        with its part and row number; a column no part has comes back as nulls."""
        columns = [*_KEYS, *extra]
        tables = []
        for number, part in enumerate(self.parts() if parts is None else parts):
            t = self.read_part(part, columns)
            t = t.append_column(_PART, pa.array(np.full(t.num_rows, number, np.int32)))
            tables.append(t.append_column(_ROW, pa.array(np.arange(t.num_rows, dtype=np.int64))))
        empty = pa.schema([(c, COLUMN_TYPES[c]) for c in columns] + [(_PART, pa.int32()), (_ROW, pa.int64())])
        table = pa.concat_tables(tables, promote_options="default") if tables else empty.empty_table()
        for c in columns:
            if c not in table.column_names:
                table = table.append_column(c, pa.nulls(table.num_rows, COLUMN_TYPES[c]))
        return table

    def done_ids(self) -> pa.Array:
        """Ids that need no more work: every row but transient errors, which resume tries again."""
        keys = self.keys()
        return pc.unique(keys.filter(pc.invert(transient_rows(keys))).column(ID))

    def deduplicate(self) -> int:
        """Keep one row per id: an ok or permanent row over a transient one, else the first; return how many were dropped.

        A retried task can write an id twice, and resume writes a transient error row's id again.
        """
        parts = self.parts()
        _, dropped = split_duplicates(self.keys(parts))
        for number in pc.unique(dropped.column(_PART)).to_pylist():
            rows = dropped.filter(pc.equal(dropped.column(_PART), number)).column(_ROW)
            table = self.read_part(parts[number])
            kept = table.filter(pc.invert(pc.is_in(pa.array(np.arange(table.num_rows)), value_set=rows.combine_chunks())))
            if kept.num_rows:
                self.write_part(kept)
            self.store.remove(parts[number])
        return dropped.num_rows


def split_duplicates(keys: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(one row per id of ``keys`` (:meth:`RunFolder.keys`), the one :meth:`RunFolder.deduplicate` keeps;
    the others): an ok or permanent row over a transient one, else the one of the first part by name."""
    ranked = keys.append_column("__transient", flag(transient_rows(keys)))
    kept, dropped = first_of_each(ranked, ID, [("__transient", "ascending"), (_PART, "ascending"), (_ROW, "ascending")])
    return kept.drop_columns(["__transient"]), dropped


def transient_rows(keys: pa.Table) -> pa.ChunkedArray:
    """Which rows of ``keys`` are transient errors (resume tries their ids again)."""
    return pc.fill_null(pc.equal(keys.column(ERROR_KIND), TRANSIENT), False)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def summarize(keys: pa.Table, before: pa.Array) -> dict[str, Any]:
    """Counts of a run's rows (:meth:`RunFolder.keys`, deduplicated).

    ``ok``, ``failed`` and ``skipped`` add up to ``rows``: ``skipped`` are the rows done
    before this attempt (``before``: their ids), ``ok`` and ``failed`` this attempt's;
    ``transient`` of the failed ones are retried by resume; ``run_ok`` / ``run_failed``
    count the whole run folder.
    """
    failed = pc.is_valid(keys.column(ERROR))
    now = pc.invert(pc.is_in(keys.column(ID), value_set=before))
    count = lambda mask: int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)  # noqa: E731
    return {
        "rows": keys.num_rows, "ok": count(pc.and_(now, pc.invert(failed))), "failed": count(pc.and_(now, failed)),
        "skipped": count(pc.invert(now)), "transient": count(transient_rows(keys)),
        "run_ok": count(pc.invert(failed)), "run_failed": count(failed),
        "audio_s": round(pc.sum(keys.column(DURATION)).as_py() or 0.0, 3),
    }
