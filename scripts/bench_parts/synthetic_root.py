"""A synthetic output root shaped as the nightly job leaves it, for benchmarks of what reads roots.

One full run over ``ids`` inputs, then ``nights`` incremental runs that each take a
share of them again (``change``: re-transcribed with newer rows, a few now errors) and
see a few inputs deleted from the listing. Rows have the output schema, about
``text_bytes`` of text and ``SEGMENTS_PER_ROW`` segments each, no word timestamps;
no audio is involved. Written through :class:`jobs.state.run_folder.RunFolder`, as the job does.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from asr_actor.schema import (
    DURATION, ERROR, ERROR_KIND, ETAG, FINGERPRINT, ID, LANGUAGE, LANGUAGE_PROBABILITY, MODEL, PERMANENT, RUN_ID, SEGMENT,
    SEGMENTS, SIZE, TASK, TEXT, TRANSCRIBED_AT, URI, output_schema,
)
from jobs.state.run_folder import RunFolder

SEGMENTS_PER_ROW = 10
POOL = 997  # distinct texts; each row's text also starts with its id, so no two rows are equal
WORDS = ("the quarterly report is due before friday please send the figures to the team and call back "
         "about the meeting tomorrow morning when the weather is fine").split()
ERROR_SHARE = 0.01  # of a night's rows: errors (default)
DELETED_SHARE = 0.001  # of the inputs: gone from the listing each night


def _pool(text_bytes: int, rng: np.random.Generator) -> tuple[list[str], pa.ListArray]:
    """``POOL`` texts of about ``text_bytes`` each and their segments (the text cut in ``SEGMENTS_PER_ROW``)."""
    texts, segments = [], []
    for _ in range(POOL):
        words = rng.choice(WORDS, size=text_bytes // 6)
        pieces = [" ".join(chunk) for chunk in np.array_split(words, SEGMENTS_PER_ROW)]
        texts.append(" ".join(pieces))
        segments.append([{"start": 6.0 * i, "end": 6.0 * i + 5.5, "text": p} for i, p in enumerate(pieces)])
    return texts, pa.array(segments, pa.list_(SEGMENT))


def _rows(ids: np.ndarray, run_id: str, at: datetime, pool: tuple[list[str], pa.ListArray],
          rng: np.random.Generator, error_share: float) -> pa.Table:
    texts, segments = pool
    pick = rng.integers(0, POOL, len(ids))
    failed = rng.random(len(ids)) < error_share
    names = [f"audio/{i:08d}.flac" for i in ids]
    text = pa.array([None if bad else f"{name} {texts[k]}" for name, k, bad in zip(names, pick, failed)], pa.string())
    columns = {
        ID: names, URI: [f"s3://bucket/{n}" for n in names], TEXT: text,
        SEGMENTS: pc.if_else(pa.array(failed), pa.nulls(len(ids), segments.type), segments.take(pa.array(pick))),
        LANGUAGE: ["en"] * len(ids), LANGUAGE_PROBABILITY: pa.nulls(len(ids), pa.float64()),
        TASK: [(None if bad else "transcribe") for bad in failed], DURATION: np.full(len(ids), 60.0),
        ERROR: [("transcribe: out of memory" if bad else None) for bad in failed],
        ERROR_KIND: [(PERMANENT if bad else None) for bad in failed], MODEL: ["offline:tiny.en"] * len(ids),
        FINGERPRINT: ["f" * 16] * len(ids), RUN_ID: [run_id] * len(ids),
        TRANSCRIBED_AT: pa.array(np.full(len(ids), np.datetime64(at.replace(tzinfo=None), "us")), pa.timestamp("us", "UTC")),
    }
    return pa.table(columns, schema=output_schema())


def _listing(ids: np.ndarray) -> pa.Table:
    names = [f"audio/{i:08d}.flac" for i in ids]
    return pa.table({ID: names, URI: [f"s3://bucket/{n}" for n in names], SIZE: np.full(len(ids), 960_000),
                     ETAG: [f"e{i}" for i in ids]})


def build(root: str, ids: int, nights: int = 3, change: float = 0.10, rows_per_part: int = 2_000,
          text_bytes: int = 2_000, error_share: float = ERROR_SHARE, seed: int = 0) -> list[RunFolder]:
    """Write the full run and ``nights`` incremental ones under ``root``; return their folders, oldest first."""
    rng = np.random.default_rng(seed)
    pool = _pool(text_bytes, rng)
    listed = np.arange(ids)
    start = datetime(2026, 11, 1, 2, 15, tzinfo=timezone.utc)
    folders = []
    for night in range(nights + 1):
        run_id = "full" if night == 0 else f"nightly-{night}"
        at = start + timedelta(days=night)
        if night:
            listed = np.setdiff1d(listed, rng.choice(listed, int(len(listed) * DELETED_SHARE), replace=False))
        taken = listed if night == 0 else np.sort(rng.choice(listed, int(len(listed) * change), replace=False))
        folder = RunFolder(f"{root.rstrip('/')}/{run_id}")
        folder.create({"run_id": run_id, "started_at": at.isoformat()}, _listing(taken),
                      None if night == 0 else _listing(listed))
        for lo in range(0, len(taken), rows_per_part):
            folder.write_part(_rows(taken[lo:lo + rows_per_part], run_id, at, pool, rng, error_share))
        folder.mark_complete({"rows": int(len(taken))})
        folders.append(folder)
    return folders
