"""Every column's name and type: the one output schema, the manifest's inputs, and the working columns.

The output schema is the same pyarrow schema for ok rows and error rows. Manifest
columns that are not part of the contract pass through unchanged, appended after the
contract's columns with the types they have in the frozen manifest. The working
columns exist only between stages (encoded audio, waveforms, windows, features) and
are never written; :mod:`jobs.run.wire` says how they cross Ray stages. A segment's and
a word's fields are named once, by their frozen records (:class:`asr_actor.segments.Segment`,
:class:`asr_actor.words.Word`); their Arrow structs here are derived from them.
"""

from __future__ import annotations

import dataclasses
import types
from datetime import datetime
from typing import Any, Mapping, get_args, get_origin, get_type_hints

import pyarrow as pa

from asr_actor.segments import Segment
from asr_actor.words import Word

# --- the output contract (DESIGN.md, "Output schema") ---
ID = "id"  # manifest key
URI = "uri"  # where the audio was read
TEXT = "text"  # the whole transcript; null on error
SEGMENTS = "segments"  # timestamped segments, seconds
LANGUAGE = "language"  # given or detected language code
LANGUAGE_PROBABILITY = "language_probability"  # how sure the detection was; null when the language was given
TASK = "task"  # transcribe | translate: per row in the manifest, and the task that made the row's text
DURATION = "duration_s"  # decoded audio length, s
ERROR = "error"  # stage and cause; null when ok
ERROR_KIND = "error_kind"  # TRANSIENT (resume retries the row) or PERMANENT; null when ok
MODEL = "model"  # model id or path
FINGERPRINT = "config_fingerprint"  # hash of everything that changes the transcript
RUN_ID = "run_id"  # the run that wrote the row
TRANSCRIBED_AT = "transcribed_at"

# Arrow type of each Python type a record's field has; every struct field is nullable, `X | None` or not.
_ARROW_TYPES: Mapping[type, pa.DataType] = {float: pa.float64(), str: pa.string(), int: pa.int32()}


def _arrow_type(hint: Any) -> pa.DataType:
    if isinstance(hint, types.UnionType):  # X | None
        (hint,) = [arg for arg in get_args(hint) if arg is not type(None)]
    if get_origin(hint) is tuple:  # tuple[Record, ...]
        return pa.list_(_arrow_type(get_args(hint)[0]))
    if dataclasses.is_dataclass(hint):
        return record_struct(hint)
    return _ARROW_TYPES[hint]


def record_struct(record: type) -> pa.StructType:
    """The Arrow struct of a frozen record (:class:`Segment`, :class:`Word`): its fields, in their order."""
    hints = get_type_hints(record)
    return pa.struct([(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(record)])


# The segments column's element and its words: the fields are named once, by the records.
WORD = record_struct(Word)
SEGMENT = record_struct(Segment)
SEG_START, SEG_END, SEG_TEXT = SEGMENT.names[:3]  # the contract's fields (s, s, its text), first in the record
CHANNEL = SEGMENT.names[-1]  # the audio channel a segment was heard on (audio.channels: split); null with mix
OUTPUT_FIELDS = [
    pa.field(ID, pa.string(), nullable=False),
    pa.field(URI, pa.string()),
    pa.field(TEXT, pa.string()),
    pa.field(SEGMENTS, pa.list_(SEGMENT)),
    pa.field(LANGUAGE, pa.string()),
    pa.field(LANGUAGE_PROBABILITY, pa.float64()),
    pa.field(TASK, pa.string()),
    pa.field(DURATION, pa.float64()),
    pa.field(ERROR, pa.string()),
    pa.field(ERROR_KIND, pa.string()),
    pa.field(MODEL, pa.string()),
    pa.field(FINGERPRINT, pa.string()),
    pa.field(RUN_ID, pa.string()),
    pa.field(TRANSCRIBED_AT, pa.timestamp("us", tz="UTC")),
]
CONTRACT_COLUMNS = tuple(f.name for f in OUTPUT_FIELDS)
TRANSIENT, PERMANENT = "transient", "permanent"  # the values of ERROR_KIND
RESULT_COLUMNS = (TEXT, SEGMENTS, LANGUAGE, LANGUAGE_PROBABILITY, TASK, DURATION, ERROR)  # what the transcriber adds

# --- the manifest ---
SIZE = "size"  # bytes of the object, from a prefix listing
ETAG = "etag"  # ETag or mtime of the object, from a prefix listing
REASON = "reason"  # why an incremental run takes the row: new, changed, model, retry
ATTEMPT = "attempt"  # 1 for a source's first try, counting up while it keeps failing
# Manifest columns the job itself consumes; they are not passed through again.
MANIFEST_INPUT_COLUMNS = (ID, URI, LANGUAGE, TASK)
# Manifest columns the stages read as well; they pass through to the output as written.
PROMPT = "prompt"  # per row: text for Whisper's prompt (names, terms); null or "" = decoding.initial_prompt
STAGE_INPUT_COLUMNS = (*MANIFEST_INPUT_COLUMNS, PROMPT)

# --- working columns between stages, never written ---
AUDIO = "audio"  # bytes of the encoded file
WAVEFORM = "waveform"  # float32 16 kHz samples: mono, or [channels, samples] with audio.channels: split
FEATURES = "features"  # [n_windows, n_mels, frames] float32 log-mel (0 windows: no speech); None = long-form or error
WINDOWS = "windows"  # [n_windows, 2] int64 sample bounds [start, end); split: [n_windows, 3], the channel third
WORKING_COLUMNS = (AUDIO, WAVEFORM, FEATURES, WINDOWS)  # dropped from the output rows
# The same arrays as plain Arrow columns, to cross Ray stages without conversion (jobs.run.wire).
FEATURE_BYTES = "features_f32"  # raw float32 bytes of FEATURES
WINDOW_BOUNDS = "window_bounds"  # WINDOWS' start and end, flattened
WINDOW_CHANNELS = "window_channels"  # WINDOWS' channel column; only with audio.channels: split
WAVE_BYTES = "waveform_f32"  # raw float32 bytes of WAVEFORM

# Arrow type of every column the stages make: an all-null batch must not come out as a
# null-typed (or, in numpy batches, NaN float) column.
COLUMN_TYPES: Mapping[str, pa.DataType] = {
    **{f.name: f.type for f in OUTPUT_FIELDS},
    PROMPT: pa.string(), SIZE: pa.int64(), ETAG: pa.string(), REASON: pa.string(), ATTEMPT: pa.int32(),
    FEATURE_BYTES: pa.binary(), WAVE_BYTES: pa.binary(), WINDOW_BOUNDS: pa.list_(pa.int64()),
    WINDOW_CHANNELS: pa.list_(pa.int32()),
}


def output_schema(manifest_schema: pa.Schema | None = None) -> pa.Schema:
    """The contract's fields plus the manifest's pass-through columns."""
    fields = list(OUTPUT_FIELDS)
    if manifest_schema is not None:
        fields += [f for f in manifest_schema if f.name not in CONTRACT_COLUMNS and f.name not in MANIFEST_INPUT_COLUMNS]
    return pa.schema(fields)


def pass_through_columns(schema: pa.Schema) -> list[str]:
    """The columns of an :func:`output_schema` that come from the manifest unchanged."""
    return [name for name in schema.names if name not in CONTRACT_COLUMNS]


def as_table(columns: Mapping[str, Any]) -> pa.Table:
    """Plain columns -> a table, each known column with its declared type."""
    return pa.table({k: pa.array(list(v), type=COLUMN_TYPES.get(k)) for k, v in columns.items()})


def to_table(rows: Mapping[str, Any], schema: pa.Schema, stamp: Mapping[str, Any], now: datetime) -> pa.Table:
    """A table in ``schema`` from transcriber output columns plus per-run ``stamp`` values."""
    n = len(rows[ID])
    columns = {}
    for field in schema:
        if field.name == TRANSCRIBED_AT:
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
