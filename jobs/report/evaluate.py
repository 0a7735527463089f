"""``asr-batch evaluate``: WER of a run's transcripts against reference texts, per row and overall."""

from __future__ import annotations

import io
from typing import Any

from asr_actor.dummy import DUMMY_PREFIX
from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.schema import ERROR, ID, MODEL, TEXT
from asr_actor.wer import WordErrors, word_errors
from asr_actor.storage import Store
from jobs.state.run_folder import RunFolder


class EvaluateError(AsrBatchError):
    """References or run folder unusable."""


def read_references(uri: str, store: Store = Store()) -> dict[str, str]:
    """``id -> text`` from a CSV or JSONL file with columns ``id`` and ``text``."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson

    try:
        data = io.BytesIO(store.read_bytes(uri))
        # ids are keys, never numbers: "001" stays "001"
        table = (pcsv.read_csv(data, convert_options=pcsv.ConvertOptions(column_types={ID: pa.string()}))
                 if uri.lower().endswith(".csv") else pjson.read_json(data))
    except Exception as exc:  # noqa: BLE001 - any failure to read is this one problem
        raise EvaluateError(f"{redact(uri)}: cannot read references ({type(exc).__name__}: {describe(exc)})") from exc
    if not {ID, TEXT} <= set(table.column_names):
        raise EvaluateError(f"{redact(uri)}: references need columns {ID} and {TEXT}, have {table.column_names}")
    return dict(zip(map(str, table.column(ID).to_pylist()), table.column(TEXT).to_pylist()))


def evaluate_run(run_uri: str, references_uri: str) -> dict[str, Any]:
    refs = read_references(references_uri)
    table = RunFolder(run_uri).read_all()
    if table.num_rows == 0:
        raise EvaluateError(f"{redact(run_uri)}: the run has no transcript rows (data/ is empty or missing)")
    dummy = sorted({m for m in table.column(MODEL).to_pylist() if str(m).startswith(DUMMY_PREFIX)})
    if dummy:
        raise EvaluateError(f"{redact(run_uri)}: the run used dummy weights ({dummy[0]}); their text means nothing")
    rows, total = [], WordErrors(0, 0, 0, 0)
    for rid, text, error in zip(*(table.column(c).to_pylist() for c in (ID, TEXT, ERROR))):
        if rid not in refs:
            continue
        e = word_errors(refs[rid], text or "")
        total = total + e
        rows.append({ID: rid, "wer": round(e.wer, 4), "errors": e.errors, "words": e.reference_words, ERROR: error})
    if not rows:
        raise EvaluateError(f"no id of {redact(references_uri)} is in the run {redact(run_uri)}")
    return {"rows": rows, "overall": {"wer": round(total.wer, 4), "files": len(rows), "words": total.reference_words}}
