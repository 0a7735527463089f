"""Fetch: ``uri`` -> encoded ``audio`` bytes through fsspec, one row at a time, failures as error rows.

Used by the job's CPU stage and by ``asr-batch transcribe`` alike. Transient storage
failures are retried for the store's ``retry_s`` seconds (:mod:`asr_actor.retry`); what is still failing
then becomes a ``transient`` error row, which ``resume`` tries again. A missing object,
a refused access, an unsupported scheme or an oversized object is a ``permanent`` error
row. Every message names the object, credentials redacted; nothing raises.
"""

from __future__ import annotations

from typing import Any, Mapping

from asr_actor.config import AudioConfig
from asr_actor.errors import describe, redact
from asr_actor.preprocess import batch_size_of, column
from asr_actor.schema import AUDIO, ERROR, ERROR_KIND, PERMANENT, TRANSIENT, URI
from asr_actor import storage
from asr_actor.retry import StoreUnavailable
from asr_actor.storage import Store

STAGE = "fetch"
Fetched = tuple[bytes | None, str | None, str | None]  # data, error, error kind


def _fetch_one(uri: str, max_bytes: int | None, store: Store) -> Fetched:
    shown = redact(uri)
    try:
        size = store.size(uri)
        if max_bytes is not None and size is not None and size > max_bytes:
            return None, f"{STAGE}: {shown} is {size} bytes, over the {max_bytes} byte limit", PERMANENT
        return store.read_bytes(uri, size), None, None
    except StoreUnavailable as exc:
        return None, f"{STAGE}: {exc}", TRANSIENT
    except storage.UnsupportedUri as exc:
        return None, f"{STAGE}: {exc}", PERMANENT
    except FileNotFoundError:
        return None, f"{STAGE}: object not found: {shown}", PERMANENT
    except PermissionError:
        return None, f"{STAGE}: access denied: {shown}", PERMANENT
    except Exception as exc:  # noqa: BLE001 - any other storage failure is this row's error
        return None, f"{STAGE}: cannot read {shown} ({type(exc).__name__}: {describe(exc)})", PERMANENT


def fetch_batch(batch: Mapping[str, Any], cfg: AudioConfig, store: Store = Store()) -> dict[str, Any]:
    """``uri`` -> ``audio`` bytes, ``error`` and ``error_kind``; rows that already carry an error are left alone."""
    n = batch_size_of(batch)
    out = {k: list(v) for k, v in batch.items()}
    errors, kinds, data = column(batch, ERROR, n), column(batch, ERROR_KIND, n), [None] * n
    for i, uri in enumerate(column(batch, URI, n)):
        if errors[i] is None:
            data[i], errors[i], kinds[i] = _fetch_one(str(uri), cfg.max_bytes, store)
    out.update({AUDIO: data, ERROR: errors, ERROR_KIND: kinds})
    return out
