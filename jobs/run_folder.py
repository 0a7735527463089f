"""The run folder, the unit of resume (see DESIGN.md, "Run folder").

    <output>/<run_id>/run.json           config (no secrets), the planned model (weights, device, dtype,
                                         attention, features), fingerprint and its inputs, versions, start
                      manifest.parquet   exactly this run's inputs; resume reads it, never the original
                      data/part-*.parquet  transcript rows; each part whole or absent
                      _SUCCESS           written last: ok / failed / skipped counts, audio and wall seconds

Exactly once: ids present in ``data/`` are done and are not planned again; a part is
written whole or not at all; and :meth:`RunFolder.deduplicate` (run before
``_SUCCESS``) removes the second copy of any id that a retried task wrote twice.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asr_actor.schema import DURATION, ERROR, ID
from jobs import storage

PART_SUFFIX = ".parquet"


class RunFolder:
    """One run's folder on any fsspec storage: its JSON files, frozen manifest and Parquet parts."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")

    def path(self, *parts: str) -> str:
        return storage.join(self.uri, *parts)

    @property
    def data(self) -> str:
        return self.path("data")

    def exists(self) -> bool:
        return storage.exists(self.path("run.json"))

    def write_json(self, name: str, obj: dict[str, Any]) -> None:
        storage.write_bytes(self.path(name), (json.dumps(obj, indent=2, default=str) + "\n").encode())

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads(storage.read_bytes(self.path(name)))

    def freeze_manifest(self, table: pa.Table) -> None:
        storage.write_bytes(self.path("manifest.parquet"), _parquet_bytes(table))

    def read_manifest(self) -> pa.Table:
        return pq.read_table(io.BytesIO(storage.read_bytes(self.path("manifest.parquet"))))

    def parts(self) -> list[str]:
        return [p for p in storage.list_files(self.data, PART_SUFFIX) if p.rsplit("/", 1)[-1].startswith("part-")]

    def read_part(self, uri: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(io.BytesIO(storage.read_bytes(uri)), columns=columns)

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for part in self.parts():
            done.update(self.read_part(part, [ID]).column(ID).to_pylist())
        return done

    def write_part(self, table: pa.Table) -> str:
        uri = storage.join(self.data, f"part-{uuid.uuid4().hex}{PART_SUFFIX}")
        storage.write_bytes(uri, _parquet_bytes(table))
        return uri

    def read_all(self) -> pa.Table:
        tables = [self.read_part(p) for p in self.parts()]
        return pa.concat_tables(tables, promote_options="default") if tables else pa.table({ID: pa.array([], pa.string())})

    def deduplicate(self) -> int:
        """Drop repeated ids (keeping the first part's row, in name order); return how many were dropped."""
        seen: set[str] = set()
        dropped = 0
        for part in self.parts():
            table = self.read_part(part)
            keep = []
            for i in table.column(ID).to_pylist():
                keep.append(i not in seen)
                seen.add(i)
            if all(keep):
                continue
            dropped += keep.count(False)
            kept = table.filter(pa.array(keep))
            if kept.num_rows:
                self.write_part(kept)
            storage.remove(part)
        return dropped


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def summarize(table: pa.Table) -> dict[str, Any]:
    """Counts of the rows in ``data/``: ok, failed, audio seconds."""
    if table.num_rows == 0:
        return {"rows": 0, "ok": 0, "failed": 0, "audio_s": 0.0}
    failed = table.num_rows - pc.count(table.column(ERROR), mode="only_null").as_py()
    audio = pc.sum(table.column(DURATION)).as_py() or 0.0
    return {"rows": table.num_rows, "ok": table.num_rows - failed, "failed": failed, "audio_s": round(audio, 3)}
