"""Fetch: ``uri`` -> encoded ``audio`` bytes through fsspec, one row at a time, failures as error rows.

Used by the job's CPU stage and by ``asr-batch transcribe`` alike: a missing,
unreadable or oversized object becomes an error row naming the object (credentials
redacted), never an exception.
"""

from __future__ import annotations

from typing import Any, Mapping

from asr_actor.config import AudioConfig
from asr_actor.errors import redact
from asr_actor.preprocess import batch_size_of, column
from asr_actor.schema import AUDIO, ERROR, URI
from jobs import storage

STAGE = "fetch"


def _fetch_one(uri: str, max_bytes: int | None) -> tuple[bytes | None, str | None]:
    shown = redact(uri)
    try:
        fs, path = storage.fs_and_path(uri)
        size = fs.size(path)
        if max_bytes is not None and size is not None and size > max_bytes:
            return None, f"{STAGE}: {shown} is {size} bytes, over the {max_bytes} byte limit"
        with fs.open(path, "rb") as fh:
            return fh.read(), None
    except FileNotFoundError:
        return None, f"{STAGE}: object not found: {shown}"
    except Exception as exc:  # noqa: BLE001 - any storage failure is this row's error
        return None, f"{STAGE}: cannot read {shown} ({type(exc).__name__})"


def fetch_batch(batch: Mapping[str, Any], cfg: AudioConfig) -> dict[str, Any]:
    """``uri`` -> ``audio`` bytes and ``error``; rows that already carry an error are left alone."""
    n = batch_size_of(batch)
    out = {k: list(v) for k, v in batch.items()}
    errors, data = column(batch, ERROR, n), [None] * n
    for i, uri in enumerate(column(batch, URI, n)):
        if errors[i] is None:
            data[i], errors[i] = _fetch_one(str(uri), cfg.max_bytes)
    out.update({AUDIO: data, ERROR: errors})
    return out
