"""Subtitle and text files, one per transcript row, as openai-whisper writes them.

The one place each per-file format is made; ``asr-batch transcribe --output-format``
and ``asr-batch export --format`` both write through :func:`write_row`.

- ``txt``: each segment's text on its own line.
- ``srt``, ``vtt``: one cue per segment, written by pysubs2 (times in whole ms).
- ``tsv``: a ``start<TAB>end<TAB>text`` header, then one segment a line, times in
  integer milliseconds.
- ``json``: the row itself (what the JSON line of that file holds).

Times are rounded to the millisecond as whisper's writers do; a ``-->`` inside a
segment's text becomes ``->`` (as in whisper), since it would end a cue's text early.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from asr_actor.schema import SEG_END, SEG_START, SEG_TEXT, SEGMENTS
from jobs.store import storage
from jobs.store.retry import DEFAULT_RETRY_S

SUBTITLE_FORMATS = ("srt", "vtt")
FILE_FORMATS = ("txt", *SUBTITLE_FORMATS, "tsv", "json")  # whisper's --output_format choices
ALL = "all"  # every format of FILE_FORMATS
TSV_HEADER = "start\tend\ttext"


def formats_of(choice: str) -> tuple[str, ...]:
    """The formats one ``--output-format`` value stands for."""
    return FILE_FORMATS if choice == ALL else (choice,)


def _ms(seconds: float) -> int:
    return round(1000 * seconds)  # whisper's own rounding to the millisecond


def _segments(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(row.get(SEGMENTS) or [])


def _txt(row: Mapping[str, Any]) -> str:
    return "".join(seg[SEG_TEXT].strip() + "\n" for seg in _segments(row))


def _subtitles(row: Mapping[str, Any], fmt: str) -> str:
    import pysubs2

    subs = pysubs2.SSAFile()
    for seg in _segments(row):
        text = seg[SEG_TEXT].strip().replace("-->", "->")
        subs.append(pysubs2.SSAEvent(start=_ms(seg[SEG_START]), end=_ms(seg[SEG_END]), text=text))
    # keep_ssa_tags: a transcript's "{...}" is text, not a SubStation override tag to convert or drop
    return subs.to_string(fmt, keep_ssa_tags=True)


def _tsv(row: Mapping[str, Any]) -> str:
    lines = [TSV_HEADER]
    for seg in _segments(row):
        text = " ".join(seg[SEG_TEXT].strip().replace("\t", " ").splitlines())
        lines.append(f"{_ms(seg[SEG_START])}\t{_ms(seg[SEG_END])}\t{text}")
    return "\n".join(lines) + "\n"


def _json(row: Mapping[str, Any]) -> str:
    return json.dumps(dict(row), ensure_ascii=False, default=str) + "\n"


def render(row: Mapping[str, Any], fmt: str) -> bytes:
    """One row (its ``text``/``segments``, as a JSON line or a Parquet row has them) as a ``fmt`` file's bytes."""
    if fmt in SUBTITLE_FORMATS:
        text = _subtitles(row, fmt)
    elif fmt == "txt":
        text = _txt(row)
    elif fmt == "tsv":
        text = _tsv(row)
    elif fmt == "json":
        text = _json(row)
    else:
        raise ValueError(f"unknown output format {fmt!r}")  # the CLI offers only FILE_FORMATS
    return text.encode("utf-8")


def write_row(row: Mapping[str, Any], dest: str, name: str, formats: Sequence[str],
              retry_s: float = DEFAULT_RETRY_S) -> list[str]:
    """Write ``DEST/NAME.FMT`` for each of ``formats`` (any fsspec URL, whole or absent); return their URIs."""
    written = []
    for fmt in formats:
        written.append(storage.join(dest, f"{name}.{fmt}"))
        storage.write_bytes(written[-1], render(row, fmt), retry_s)
    return written
