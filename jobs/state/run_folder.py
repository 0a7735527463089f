"""The run folder, the unit of resume (see DESIGN.md, "Run folder").

    <output>/<run_id>/run.json           config (no secrets), the planned model (weights, device, dtype,
                                         attention, features), fingerprint and its inputs, versions, start
                      manifest.parquet   exactly this run's inputs; resume reads it, never the original
                      data/part-*.parquet  transcript rows; each part whole or absent
                      listing.parquet    (incremental runs) every input seen; the manifest holds those taken
                      _SUCCESS           written last: ok / failed / skipped counts, audio and wall seconds
                      _PUBLISHED         after _SUCCESS, per published table: snapshot, rows, time

:class:`RunFolder` is the one writer of all of it, in the shape of a Ray Data datasink:
:meth:`~RunFolder.create` on start (the frozen inputs, then ``run.json``),
:meth:`~RunFolder.write_part` for each part, :meth:`~RunFolder.finish` on complete
(one row per id, the counts, ``_SUCCESS``). Every file name is one of its constants.

Exactly once: ids present in ``data/`` are done and are not planned again; a part is
written whole or not at all; and :meth:`RunFolder.deduplicate` (run before
``_SUCCESS``) removes the second copy of any id that a retried task wrote twice.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asr_actor import storage
from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.schema import COLUMN_TYPES, DURATION, ERROR, ERROR_KIND, ID, TRANSIENT
from jobs.state.arrow_ops import first_of_each, flag
from asr_actor.storage import Store

RUN_JSON = "run.json"  # the run's record, written when it is planned: its folder is a run folder
MANIFEST = "manifest.parquet"  # exactly this run's inputs
LISTING = "listing.parquet"  # an incremental run's whole input listing
DATA = "data"  # the folder of the parts
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"  # data/part-<uuid>.parquet
SUCCESS = "_SUCCESS"  # written last: the run is complete
PUBLISHED = "_PUBLISHED"  # after SUCCESS: {target URI: its publish record}, one entry per table the rows went to


_KEYS = (ID, ERROR, ERROR_KIND, DURATION)  # what resume, dedupe and the summary read of each row
_PART, _ROW = "__part", "__row"


class IncompleteRun(AsrBatchError):
    """Some manifest ids have no output row at the end of an attempt."""


class BadRecord(AsrBatchError, ValueError):
    """A ``run.json`` that is not JSON."""


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
        return self.path(DATA)

    def exists(self) -> bool:
        return self.store.exists(self.path(RUN_JSON))

    def create(self, record: dict[str, Any], manifest: pa.Table, listing: pa.Table | None = None) -> None:
        """On start: freeze the run's inputs (an incremental run's whole ``listing`` too), then ``run.json``,
        last, so that a folder with a ``run.json`` always has its inputs."""
        if listing is not None:
            self.store.write_bytes(self.path(LISTING), _parquet_bytes(listing))
        self.store.write_bytes(self.path(MANIFEST), _parquet_bytes(manifest))
        self._write_json(RUN_JSON, record)

    def _write_json(self, name: str, obj: dict[str, Any]) -> None:
        self.store.write_bytes(self.path(name), (json.dumps(obj, indent=2, default=str) + "\n").encode())

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads(self.store.read_bytes(self.path(name)))

    def record(self) -> dict[str, Any]:
        """``run.json``: the config, the planned model, the fingerprint and its inputs, versions, start.
        ``FileNotFoundError`` where this is no run folder, :class:`BadRecord` where it is not JSON."""
        try:
            return self.read_json(RUN_JSON)
        except ValueError as exc:
            raise BadRecord(f"{redact(self.path(RUN_JSON))}: not a JSON file ({describe(exc)})") from exc

    def read_manifest(self, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(io.BytesIO(self.store.read_bytes(self.path(MANIFEST))), columns=columns)

    def parts(self) -> list[str]:
        names = self.store.list_files(self.data, PART_SUFFIX)
        return [p for p in names if p.rsplit("/", 1)[-1].startswith(PART_PREFIX)]

    def read_part(self, uri: str, columns: list[str] | None = None) -> pa.Table:
        """One part; of ``columns``, those it has (parts of older runs lack newer nullable columns)."""
        source = io.BytesIO(self.store.read_bytes(uri))
        if columns is not None:
            present = set(pq.read_schema(source).names)
            columns = [c for c in columns if c in present]
        return pq.read_table(source, columns=columns)

    def write_part(self, table: pa.Table) -> str:
        """Each part: rows written whole under a new name; return its URI."""
        uri = storage.join(self.data, f"{PART_PREFIX}{uuid.uuid4().hex}{PART_SUFFIX}")
        self.store.write_bytes(uri, _parquet_bytes(table))
        return uri

    def finish(self, done_before: pa.Array, figures: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """On complete: one row per id (:meth:`deduplicate`), the counts (:func:`summarize`; ``figures(counts)``
        adds the caller's), then ``_SUCCESS`` with them; return what it holds. Raise :class:`IncompleteRun`,
        writing nothing, when some manifest id has no row."""
        dropped = self.deduplicate()
        counts = summarize(self.keys(), done_before)
        missing = self.read_manifest([ID]).num_rows - counts["rows"]
        if missing:
            raise IncompleteRun(f"{missing} manifest ids have no output row; resume the run to finish them")
        summary = {**counts, **figures(counts), "duplicates_dropped": dropped, "output": redact(self.uri),
                   "finished_at": datetime.now(timezone.utc).isoformat()}
        self.mark_complete(summary)
        return summary

    def mark_complete(self, summary: dict[str, Any]) -> None:
        """Write ``_SUCCESS`` holding ``summary``: the run is complete (:meth:`finish` checks and counts first)."""
        self._write_json(SUCCESS, summary)

    def read_all(self, columns: list[str] | None = None) -> pa.Table:
        """Every row in ``data/`` (of ``columns``, those present); parts of older runs may lack newer columns."""
        tables = [self.read_part(p, columns) for p in self.parts()]
        return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({ID: pa.array([], pa.string())})

    def is_complete(self) -> bool:
        return self.store.exists(self.path(SUCCESS))

    def listing_uri(self) -> str:
        """Where the inputs this run saw are: the listing of an incremental run, else the manifest."""
        return self.path(LISTING) if self.store.exists(self.path(LISTING)) else self.path(MANIFEST)

    def read_listing(self, columns: list[str] | None = None) -> pa.Table:
        """The inputs this run saw (:meth:`listing_uri`), of ``columns`` (None: all)."""
        return pq.read_table(io.BytesIO(self.store.read_bytes(self.listing_uri())), columns=columns)

    def published(self) -> dict[str, Any]:
        """``_PUBLISHED``: each table this complete run's rows were published to -> its record (none: {})."""
        try:
            return self.read_json(PUBLISHED)
        except FileNotFoundError:
            return {}

    def mark_published(self, target: str, record: dict[str, Any]) -> None:
        """Add ``target``'s record to ``_PUBLISHED`` (the caller holds the root's lock: no other writer)."""
        self._write_json(PUBLISHED, {**self.published(), target: record})

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


def run_folders(root: str, store: Store = Store()) -> list[tuple[RunFolder, dict[str, Any]]]:
    """The run folders directly under ``root`` (those with a ``run.json``) and their records, oldest
    first: by the record's ``started_at``, then by name."""
    found = []
    for uri in store.list_dirs(root):
        folder = RunFolder(uri, store)
        try:
            found.append((folder, folder.record()))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return sorted(found, key=lambda run: (str(run[1].get("started_at", "")), run[0].uri))


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
