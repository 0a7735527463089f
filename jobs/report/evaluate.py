"""``asr-batch evaluate``: error rates of a run's transcripts against reference texts, per row, per language, overall.

Each row is scored in the language of its text (the row's ``language``, given or
detected; English for a row whose ``task`` is translate) by :mod:`asr_actor.wer`:
characters (CER) for a language written without spaces, words (WER) for the others,
after Whisper's normalizer for that language. A row says which
metric it has; the per-language table says it too; the overall WER counts the word
languages' rows, the overall CER the character languages'.
"""

from __future__ import annotations

import io
from typing import Any

from asr_actor.dummy import DUMMY_PREFIX
from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor.schema import ERROR, ID, LANGUAGE, MODEL, TASK, TEXT
from asr_actor.wer import CER, WER, WordErrors, metric, word_errors
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
    languages, tasks = (table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
                        for c in (LANGUAGE, TASK))  # runs of older versions lack the newer columns
    rows, by_language, files = [], {}, {}
    for rid, text, error, language, task in zip(*(table.column(c).to_pylist() for c in (ID, TEXT, ERROR)), languages,
                                                tasks):
        if rid not in refs:
            continue
        written = "en" if task == "translate" else language  # a translation's text is English, whatever it heard
        e = word_errors(refs[rid], text or "", written)
        key = written or "en"
        by_language[key] = by_language.get(key, WordErrors(0, 0, 0, 0)) + e
        files[key] = files.get(key, 0) + 1
        rows.append({ID: rid, LANGUAGE: language, TASK: task, **_figures(e, metric(written)), ERROR: error})
    if not rows:
        raise EvaluateError(f"no id of {redact(references_uri)} is in the run {redact(run_uri)}")
    table_rows = [{LANGUAGE: lang, "metric": metric(lang), **_figures(e, metric(lang)), "files": files[lang]}
                  for lang, e in sorted(by_language.items())]
    overall: dict[str, Any] = {}
    for name in (WER, CER):  # each over its languages' rows: a WER and a CER do not add up
        scored = [e for lang, e in by_language.items() if metric(lang) == name]
        if scored:
            overall.update({k: v for k, v in _figures(sum(scored, WordErrors(0, 0, 0, 0)), name).items() if k != "errors"})
    return {"rows": rows, "languages": table_rows, "overall": {**overall, "files": len(rows)}}


def _figures(e: WordErrors, name: str) -> dict[str, Any]:
    """``{"wer": rate, "errors": n, "words": n}``, or with ``cer`` and ``characters``."""
    return {name: round(e.wer, 4), "errors": e.errors, "words" if name == WER else "characters": e.reference_words}
