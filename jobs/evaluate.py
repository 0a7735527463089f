"""``asr-batch evaluate``: WER of a run's transcripts against reference texts, per row and overall."""

from __future__ import annotations

import io
from typing import Any

from asr_actor.wer import WordErrors, word_errors
from jobs import storage
from jobs.run_folder import RunFolder


class EvaluateError(ValueError):
    """References or run folder unusable."""


def read_references(uri: str) -> dict[str, str]:
    """``id -> text`` from a CSV or JSONL file with columns ``id`` and ``text``."""
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson

    try:
        data = io.BytesIO(storage.read_bytes(uri))
        table = pcsv.read_csv(data) if uri.lower().endswith(".csv") else pjson.read_json(data)
    except Exception as exc:  # noqa: BLE001
        raise EvaluateError(f"{storage.redact(uri)}: cannot read references ({type(exc).__name__}: {exc})") from exc
    if not {"id", "text"} <= set(table.column_names):
        raise EvaluateError(f"{storage.redact(uri)}: references need columns id and text, have {table.column_names}")
    return dict(zip(map(str, table.column("id").to_pylist()), table.column("text").to_pylist()))


def evaluate_run(run_uri: str, references_uri: str) -> dict[str, Any]:
    refs = read_references(references_uri)
    table = RunFolder(run_uri).read_all()
    rows, total = [], WordErrors(0, 0, 0, 0)
    for rid, text, error in zip(*(table.column(c).to_pylist() for c in ("id", "text", "error"))):
        if rid not in refs:
            continue
        e = word_errors(refs[rid], text or "")
        total = total + e
        rows.append({"id": rid, "wer": round(e.wer, 4), "errors": e.errors, "words": e.reference_words, "error": error})
    if not rows:
        raise EvaluateError(f"no id of {storage.redact(references_uri)} is in the run {storage.redact(run_uri)}")
    return {"rows": rows, "overall": {"wer": round(total.wer, 4), "files": len(rows), "words": total.reference_words}}
