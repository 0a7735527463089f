"""Error rows grouped by cause: an error's text without the part that differs from file to file.

URIs and absolute paths, quoted values, numbers (seconds, byte counts, tries) and hex
ids become ``…``, and a ``: …`` field that holds nothing else is dropped, so
``fetch: object not found: s3://b/x.wav`` and ``fetch: object not found: /data/y 2.wav``
are one cause, ``fetch: object not found``, and ``decode: truncated data at 3.20 s`` is
``decode: truncated data at … s``. An id that appears in an error only as a bare word
stays in it. Everything runs in Arrow compute (RE2 patterns), with no Python object per row.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.schema import ERROR, ID

TOP_CAUSES = 10  # causes shown, commonest first
ELIDED = "…"  # what stands where a per-file value was
_END = r"[^\s:,;.)'\"]"  # the last character of a URI or path: not the punctuation after it
_BEFORE = r"(^|[\s(\[=:,])"  # what may come just before a path or a quoted value
_RULES = (  # (RE2 pattern, replacement), in order
    (r"[A-Za-z][A-Za-z0-9+.\-]*://\S*" + _END, ELIDED),  # URIs (credentials included)
    (_BEFORE + r"/\S*" + _END, r"\1" + ELIDED),  # absolute paths
    (_BEFORE + r"'[^']*'", r"\1" + ELIDED),  # quoted values: a language, a task, a path
    (_BEFORE + r'"[^"]*"', r"\1" + ELIDED),
    (r"\b\d+(\.\d+)?\b", ELIDED),  # numbers: seconds, bytes, tries, status codes
    (r"\b[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*\b", ELIDED),  # hex ids, hashes
    (ELIDED + r"[\w.\-/]+", ELIDED),  # the rest of a path cut at a space ("… 2.wav")
    (ELIDED + r"([\s,]*" + ELIDED + ")+", ELIDED),  # runs of them
    (r"(:\s*" + ELIDED + r")+(\s*:|\s*$)", r"\2"),  # a field that held only a per-file value
    (r"\s+", " "),
)


def causes(errors: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each error text's cause (null stays null)."""
    for pattern, replacement in _RULES:
        errors = pc.replace_substring_regex(errors, pattern=pattern, replacement=replacement)
    return pc.utf8_trim(errors, characters=" :")


def top_causes(rows: pa.Table, limit: int = TOP_CAUSES) -> tuple[list[dict[str, Any]], int]:
    """The ``limit`` commonest causes of ``rows``' error rows (``cause``, ``count``, ``example_id``: the
    smallest id), most rows first; and how many distinct causes there are."""
    failed = rows.filter(pc.is_valid(rows.column(ERROR)))
    table = pa.table({"cause": causes(failed.column(ERROR)), ID: failed.column(ID)})
    grouped = table.group_by("cause").aggregate([(ID, "count"), (ID, "min")])
    top = grouped.sort_by([(f"{ID}_count", "descending"), ("cause", "ascending")]).slice(0, limit)
    shown = [{"cause": r["cause"], "count": r[f"{ID}_count"], "example_id": r[f"{ID}_min"]} for r in top.to_pylist()]
    return shown, grouped.num_rows
