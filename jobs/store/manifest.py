"""Read and check the job's input: a manifest file (Parquet, CSV, JSONL) or a prefix of audio objects.

Problems with the manifest itself (unreadable, no ``uri`` column, duplicate ids) stop
the job before any work, with a message naming the file and the problem. Relative
``uri`` values are resolved against the manifest's folder, so the frozen copy in the
run folder is self-contained.
"""

from __future__ import annotations

import io
import json
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.schema import ETAG, ID, LANGUAGE, PROMPT, SIZE, TASK, URI
from asr_actor import storage
from asr_actor.storage import Store, object_tag

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".mp4", ".webm", ".mkv", ".aac")
MANIFEST_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")


class ManifestError(AsrBatchError):
    """The manifest cannot be used; nothing has been processed."""


_KEY_COLUMNS = (ID, URI)  # read exactly as written: never numbers, booleans or nulls
_TEXT_COLUMNS = (LANGUAGE, TASK, PROMPT)  # read by the stages: text or null


def _read_csv(data: bytes) -> pa.Table:
    import pyarrow.csv as pcsv

    # Keys and the text the stages read as strings ("001" stays "001", "nan" and "TRUE" stay text);
    # other columns inferred.
    keys = {c: pa.string() for c in (*_KEY_COLUMNS, *_TEXT_COLUMNS)}
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


def _read_file(uri: str, store: Store) -> pa.Table:
    import pyarrow.parquet as pq

    data = store.read_bytes(uri)
    lower = uri.lower()
    if lower.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data))
    if lower.endswith(".csv"):
        return _read_csv(data)
    return _read_jsonl(data)


Listed = Iterator[tuple[str, int, str]]  # (URI, size in bytes, ETag or mtime) of each object


S3_PAGE = 1000  # keys per ListObjectsV2 page (S3's maximum)


def s3_objects(uri: str, store: Store, page: int = S3_PAGE) -> Listed:
    """ListObjectsV2 page by page: a bucket of millions streams in flat memory."""
    import boto3  # the s3 extra; endpoint and credentials from the environment, as s3fs takes them

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    client, token = boto3.client("s3"), None
    while True:
        kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page, **({"ContinuationToken": token} if token else {})}
        reply = store.run(uri, lambda: client.list_objects_v2(**kwargs))
        for obj in reply.get("Contents", []):
            yield f"s3://{bucket}/{obj['Key']}", int(obj.get("Size") or 0), object_tag(obj) or ""
        if not reply.get("IsTruncated"):
            return
        token = reply["NextContinuationToken"]


def _fsspec_objects(uri: str, store: Store) -> Listed:
    for full, info in store.find(uri).items():  # full URIs, sorted
        yield full, int(info.get("size") or 0), object_tag(info) or ""


def _list_prefix(uri: str, store: Store) -> pa.Table:
    """The audio objects under a prefix, with size and ETag/mtime, as columns (never a dict per object)."""
    uris: list[str] = []
    sizes: list[int] = []
    tags: list[str] = []
    objects = s3_objects(uri, store) if uri.startswith("s3://") else _fsspec_objects(uri, store)
    for name, size, tag in objects:
        if name.lower().endswith(AUDIO_SUFFIXES):
            uris.append(name)
            sizes.append(size)
            tags.append(tag)
    if not uris:
        raise ManifestError(f"{redact(uri)}: no audio files ({', '.join(AUDIO_SUFFIXES)}) under this prefix")
    ids = pa.array(uris, pa.string())
    return pa.table({ID: ids, URI: ids, SIZE: pa.array(sizes, pa.int64()), ETAG: pa.array(tags, pa.string())})


def _is_prefix(uri: str, store: Store) -> bool:
    if uri.endswith("/"):
        return True
    if uri.lower().endswith(MANIFEST_SUFFIXES):
        return False
    return store.is_dir(uri)


def _empty(values: pa.ChunkedArray) -> int:
    """Rows with no value: null or the empty string."""
    return values.null_count + pc.sum(pc.equal(values, "")).as_py() if len(values) else 0


def read_manifest(uri: str, store: Store = Store()) -> pa.Table:
    """The checked manifest: string ``id`` and absolute ``uri`` first, other columns after."""
    shown = redact(uri)
    try:
        if _is_prefix(uri, store):
            return _list_prefix(uri, store)
        table = _read_file(uri, store)
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
    for name in _TEXT_COLUMNS:
        kind = table.schema.field(name).type if name in table.column_names else pa.string()
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            raise ManifestError(f"{shown}: column {name!r} must hold text, it holds {kind}")
    rest = [c for c in table.column_names if c not in (ID, URI)]
    return pa.table([ids, uris, *(table.column(c) for c in rest)], names=[ID, URI, *rest])
