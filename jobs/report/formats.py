"""The output formats: one registry of every format's writer and of the commands that offer it.

:data:`FORMATS` is the one list of format names. ``asr-batch transcribe --output-format``,
``asr-batch export --format`` (and its ``--to -``) and the CLI's ``choices`` all read it,
so this module imports nothing heavy: pyarrow's writers and pysubs2 are imported inside
the writers, and ``asr-batch --help`` stays instant.

Tables (``export`` writes them in parts; jsonl and csv also to standard output):

- ``parquet``: zstd-compressed Parquet.
- ``jsonl``: one JSON object a row.
- ``csv``: a header, then one line a row; ``segments`` as a JSON string (CSV has no lists).

One file per transcript row, as openai-whisper writes them (``transcribe --output-format``
offers them all, ``export --format`` all but ``json``, whose rows ``jsonl`` has):

- ``txt``: each segment's text on its own line.
- ``srt``, ``vtt``: one cue per segment, written by pysubs2 (times in whole ms).
- ``tsv``: a ``start<TAB>end<TAB>text`` header, then one segment a line, times in
  integer milliseconds.
- ``json``: the row itself (what the JSON line of that file holds).

Times are rounded to the millisecond as whisper's writers do; a ``-->`` inside a
segment's text becomes ``->`` (as in whisper), since it would end a cue's text early.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from asr_actor import storage
from asr_actor.storage import Store

ALL = "all"  # transcribe --output-format: every format it offers
TSV_HEADER = "start\tend\ttext"


# --- tables: (a pyarrow Table, whether to write the header) -> the bytes of one part ---

def _parquet(table: Any, header: bool) -> bytes:  # noqa: ARG001 - a Parquet part always has its schema
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _jsonl(table: Any, header: bool) -> bytes:  # noqa: ARG001 - JSON lines have no header
    return "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in table.to_pylist()).encode()


def _csv(table: Any, header: bool) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from asr_actor.schema import SEGMENTS

    if SEGMENTS in table.column_names:  # CSV has no lists: segments as a JSON string
        text = [json.dumps(s, ensure_ascii=False) for s in table.column(SEGMENTS).to_pylist()]
        table = table.set_column(table.column_names.index(SEGMENTS), SEGMENTS, pa.array(text, pa.string()))
    sink = io.BytesIO()
    pcsv.write_csv(table, sink, pcsv.WriteOptions(include_header=header))
    return sink.getvalue()


# --- one file per row: a row (its ``text``/``segments``, as a JSON line or a Parquet row has them) -> the file's text ---

def _ms(seconds: float) -> int:
    return round(1000 * seconds)  # whisper's own rounding to the millisecond


def _segments(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    from asr_actor.schema import SEGMENTS

    return list(row.get(SEGMENTS) or [])


def _txt(row: Mapping[str, Any]) -> str:
    from asr_actor.schema import SEG_TEXT

    return "".join(seg[SEG_TEXT].strip() + "\n" for seg in _segments(row))


def _subtitles(row: Mapping[str, Any], fmt: str) -> str:
    import pysubs2

    from asr_actor.schema import SEG_END, SEG_START, SEG_TEXT

    subs = pysubs2.SSAFile()
    for seg in _segments(row):
        text = seg[SEG_TEXT].strip().replace("-->", "->")
        subs.append(pysubs2.SSAEvent(start=_ms(seg[SEG_START]), end=_ms(seg[SEG_END]), text=text))
    # keep_ssa_tags: a transcript's "{...}" is text, not a SubStation override tag to convert or drop
    return subs.to_string(fmt, keep_ssa_tags=True)


def _srt(row: Mapping[str, Any]) -> str:
    return _subtitles(row, "srt")


def _vtt(row: Mapping[str, Any]) -> str:
    return _subtitles(row, "vtt")


def _tsv(row: Mapping[str, Any]) -> str:
    from asr_actor.schema import SEG_END, SEG_START, SEG_TEXT

    lines = [TSV_HEADER]
    for seg in _segments(row):
        text = " ".join(seg[SEG_TEXT].strip().replace("\t", " ").splitlines())
        lines.append(f"{_ms(seg[SEG_START])}\t{_ms(seg[SEG_END])}\t{text}")
    return "\n".join(lines) + "\n"


def _json(row: Mapping[str, Any]) -> str:
    return json.dumps(dict(row), ensure_ascii=False, default=str) + "\n"


@dataclass(frozen=True)
class Format:
    """One output format: its writer (a table's or a row's, never both) and the commands that offer it."""

    table: Callable[[Any, bool], bytes] | None = None  # a table in parts: (a pyarrow Table, header?) -> a part's bytes
    row: Callable[[Mapping[str, Any]], str] | None = None  # one file per row: a row -> the file's text
    transcribe: bool = False  # offered by transcribe --output-format (openai-whisper's --output_format)
    export: bool = True  # offered by export --format
    stdout: bool = False  # a text table that export --to - can show

    @property
    def per_file(self) -> bool:
        """One file per row (openai-whisper's formats), not a table in parts."""
        return self.row is not None


# The one registry; its order is the order the CLI lists them in and ``all`` writes them.
FORMATS: Mapping[str, Format] = {
    "parquet": Format(table=_parquet),
    "jsonl": Format(table=_jsonl, stdout=True),
    "csv": Format(table=_csv, stdout=True),
    "txt": Format(row=_txt, transcribe=True),
    "srt": Format(row=_srt, transcribe=True),
    "vtt": Format(row=_vtt, transcribe=True),
    "tsv": Format(row=_tsv, transcribe=True),
    "json": Format(row=_json, transcribe=True, export=False),  # export's rows as JSON: jsonl
}
FILE_FORMATS = tuple(name for name, f in FORMATS.items() if f.transcribe)  # transcribe --output-format, but ALL
TRANSCRIBE_CHOICES = (*FILE_FORMATS, ALL)
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.export)  # export --format
TABLE_FORMATS = tuple(name for name in EXPORT_FORMATS if not FORMATS[name].per_file)
PER_FILE_FORMATS = tuple(name for name in EXPORT_FORMATS if FORMATS[name].per_file)  # export: one file per ok row
STDOUT_FORMATS = tuple(name for name, f in FORMATS.items() if f.stdout)  # export --to -


def formats_of(choice: str) -> tuple[str, ...]:
    """The formats one ``--output-format`` value stands for."""
    return FILE_FORMATS if choice == ALL else (choice,)


def encode(table: Any, fmt: str, header: bool = True) -> bytes:
    """A table (pyarrow) as the bytes of one ``fmt`` part; ``header``: a text table's column names first."""
    writer = FORMATS[fmt].table if fmt in FORMATS else None
    if writer is None:
        raise ValueError(f"{fmt!r} is not a table format")  # export offers only TABLE_FORMATS here
    return writer(table, header)


def render(row: Mapping[str, Any], fmt: str) -> bytes:
    """One row (its ``text``/``segments``, as a JSON line or a Parquet row has them) as a ``fmt`` file's bytes."""
    writer = FORMATS[fmt].row if fmt in FORMATS else None
    if writer is None:
        raise ValueError(f"unknown output format {fmt!r}")  # the CLI offers only FILE_FORMATS
    return writer(row).encode("utf-8")


def write_row(row: Mapping[str, Any], dest: str, name: str, formats: Sequence[str],
              store: Store = Store()) -> list[str]:
    """Write ``DEST/NAME.FMT`` for each of ``formats`` (any fsspec URL, whole or absent); return their URIs."""
    written = []
    for fmt in formats:
        written.append(storage.join(dest, f"{name}.{fmt}"))
        store.write_bytes(written[-1], render(row, fmt))
    return written
