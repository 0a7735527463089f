"""Read and check the job's input: a manifest file (Parquet, CSV, JSONL) or a prefix of audio objects.

Problems with the manifest itself (unreadable, no ``uri`` column, duplicate ids) stop
the job before any work, with a message naming the file and the problem. Relative
``uri`` values are resolved against the manifest's folder, so the frozen copy in the
run folder is self-contained.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.schema import ETAG, ID, SIZE, URI
from jobs import storage
from jobs.retry import DEFAULT_RETRY_S, retrying

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".mp4", ".webm", ".mkv", ".aac")
MANIFEST_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")


class ManifestError(AsrBatchError):
    """The manifest cannot be used; nothing has been processed."""


_KEY_COLUMNS = (ID, URI)  # read exactly as written: never numbers, booleans or nulls


def _read_csv(data: bytes) -> pa.Table:
    import pyarrow.csv as pcsv

    # Keys as strings ("001" stays "001", "nan" and "TRUE" stay text); other columns inferred.
    keys = {c: pa.string() for c in _KEY_COLUMNS}
    return pcsv.read_csv(io.BytesIO(data), convert_options=pcsv.ConvertOptions(column_types=keys))


def _json_text(value: Any) -> str | None:
    """A JSON value as its source text: numbers were parsed as strings already."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _read_jsonl(data: bytes) -> pa.Table:
    """One JSON object a line; ``id`` and ``uri`` keep the text they were written with (``1e3``, not 1000.0)."""
    import pyarrow.json as pjson

    try:
        table = pjson.read_json(io.BytesIO(data))
        if all(pa.types.is_string(f.type) for f in table.schema if f.name in _KEY_COLUMNS):
            return table
    except pa.ArrowInvalid:  # a column whose type changes between rows (an id that is a number here, text there)
        table = None
    lines = [line for line in data.splitlines() if line.strip()]
    exact = [json.loads(line, parse_int=str, parse_float=str, parse_constant=str) for line in lines]
    keys = {n: pa.array([_json_text(r.get(n)) for r in exact], pa.string()) for n in _KEY_COLUMNS
            if any(n in r for r in exact)}
    if table is None:
        rows = [json.loads(line) for line in lines]
        table = pa.Table.from_pylist([{k: v for k, v in r.items() if k not in keys} for r in rows])
    rest = [c for c in table.column_names if c not in keys]
    return pa.table([*keys.values(), *(table.column(c) for c in rest)], names=[*keys, *rest])


def _read_file(uri: str, retry_s: float) -> pa.Table:
    import pyarrow.parquet as pq

    data = storage.read_bytes(uri, retry_s)
    lower = uri.lower()
    if lower.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data))
    if lower.endswith(".csv"):
        return _read_csv(data)
    return _read_jsonl(data)


def _list_prefix(uri: str, retry_s: float) -> pa.Table:
    fs, root = storage.fs_and_path(uri)
    found = retrying(lambda: fs.find(root, detail=True), uri, retry_s)
    scheme = uri.split("://", 1)[0] + "://" if "://" in uri and not uri.startswith("file://") else ""
    rows = [
        (scheme + path, int(info.get("size") or 0), str(info.get("ETag") or info.get("etag") or info.get("mtime") or ""))
        for path, info in sorted(found.items())
        if path.lower().endswith(AUDIO_SUFFIXES)
    ]
    if not rows:
        raise ManifestError(f"{redact(uri)}: no audio files ({', '.join(AUDIO_SUFFIXES)}) under this prefix")
    uris, sizes, tags = zip(*rows)
    return pa.table({ID: list(uris), URI: list(uris), SIZE: list(sizes), ETAG: list(tags)})


def _is_prefix(uri: str, retry_s: float) -> bool:
    if uri.endswith("/"):
        return True
    if uri.lower().endswith(MANIFEST_SUFFIXES):
        return False
    fs, path = storage.fs_and_path(uri)
    return retrying(lambda: fs.isdir(path), uri, retry_s)


def _empty(values: pa.ChunkedArray) -> int:
    """Rows with no value: null or the empty string."""
    return values.null_count + pc.sum(pc.equal(values, "")).as_py() if len(values) else 0


def read_manifest(uri: str, retry_s: float = DEFAULT_RETRY_S) -> pa.Table:
    """The checked manifest: string ``id`` and absolute ``uri`` first, other columns after."""
    shown = redact(uri)
    try:
        if _is_prefix(uri, retry_s):
            return _list_prefix(uri, retry_s)
        table = _read_file(uri, retry_s)
    except ManifestError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise ManifestError(f"{shown}: cannot read the manifest ({type(exc).__name__}: {describe(exc)})") from exc
    if URI not in table.column_names:
        raise ManifestError(f"{shown}: no {URI!r} column (columns: {table.column_names})")
    if table.num_rows == 0:
        raise ManifestError(f"{shown}: the manifest has no rows")
    uris = table.column(URI).cast(pa.string())
    if empty := _empty(uris):
        raise ManifestError(f"{shown}: {empty} row(s) have an empty {URI!r}")
    base = storage.parent(uri)
    uris = pa.array([storage.absolute(u, base) for u in uris.to_pylist()], pa.string())
    ids = table.column(ID).cast(pa.string()) if ID in table.column_names else uris
    if empty := _empty(ids):
        raise ManifestError(f"{shown}: {empty} row(s) have an empty {ID!r}")
    counts = pc.value_counts(ids)
    dups = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    if len(dups):
        raise ManifestError(f"{shown}: duplicate ids ({len(dups)}), e.g. {dups[:3].to_pylist()}")
    rest = [c for c in table.column_names if c not in (ID, URI)]
    return pa.table([ids, uris, *(table.column(c) for c in rest)], names=[ID, URI, *rest])
