"""The one output schema: the same pyarrow schema for ok rows and error rows.

Manifest columns that are not part of the contract pass through unchanged, appended
after the contract's columns with the types they have in the frozen manifest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import pyarrow as pa

SEGMENT = pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())])

OUTPUT_FIELDS = [
    pa.field("id", pa.string(), nullable=False),  # manifest key
    pa.field("uri", pa.string()),  # where the audio was read
    pa.field("text", pa.string()),  # the whole transcript; null on error
    pa.field("segments", pa.list_(SEGMENT)),  # timestamped segments, seconds
    pa.field("language", pa.string()),  # given or detected language code
    pa.field("duration_s", pa.float64()),  # decoded audio length
    pa.field("error", pa.string()),  # stage and cause; null when ok
    pa.field("model", pa.string()),  # model id or path
    pa.field("config_fingerprint", pa.string()),  # hash of everything that changes the transcript
    pa.field("run_id", pa.string()),  # the run that wrote the row
    pa.field("transcribed_at", pa.timestamp("us", tz="UTC")),
]
CONTRACT_COLUMNS = tuple(f.name for f in OUTPUT_FIELDS)
# Manifest columns the job itself consumes; they are not passed through again.
MANIFEST_INPUT_COLUMNS = ("id", "uri", "language", "task")


def output_schema(manifest_schema: pa.Schema | None = None) -> pa.Schema:
    """The contract's fields plus the manifest's pass-through columns."""
    fields = list(OUTPUT_FIELDS)
    if manifest_schema is not None:
        fields += [f for f in manifest_schema if f.name not in CONTRACT_COLUMNS and f.name not in MANIFEST_INPUT_COLUMNS]
    return pa.schema(fields)


def pass_through_columns(schema: pa.Schema) -> list[str]:
    """The columns of an :func:`output_schema` that come from the manifest unchanged."""
    return [name for name in schema.names if name not in CONTRACT_COLUMNS]


def to_table(rows: Mapping[str, list[Any]], schema: pa.Schema, stamp: Mapping[str, Any], now: datetime) -> pa.Table:
    """A table in ``schema`` from transcriber output columns plus per-run ``stamp`` values."""
    n = len(rows["id"])
    columns = {}
    for field in schema:
        if field.name == "transcribed_at":
            values = [now] * n
        elif field.name in stamp:
            values = [stamp[field.name]] * n
        elif isinstance(rows.get(field.name), (pa.Array, pa.ChunkedArray)):
            columns[field.name] = rows[field.name].cast(field.type)  # already Arrow: keep it exact
            continue
        else:
            values = list(rows.get(field.name, [None] * n))
        columns[field.name] = pa.array(values, type=field.type)
    return pa.table(columns, schema=schema)
