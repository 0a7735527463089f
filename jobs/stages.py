"""The job's stages as functions of a dict batch (one row per file), testable with no cluster.

fetch -> decode -> features run together in one CPU stage (:func:`prepare_stage`), the
model runs in :class:`TranscribeActor`, and :class:`WriteStage` writes Parquet parts.
Between stages the log-mel windows travel as raw float32 bytes: a plain binary column
that Arrow and Ray's object store move without conversion.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from asr_actor.config import AudioConfig, ModelConfig
from asr_actor.prepare import ERROR, FEATURES, WAVEFORM, WINDOWS, batch_size_of, column, decode_batch, features_batch
from asr_actor.schema import SEGMENT
from jobs import storage

FEATURE_BYTES, WINDOW_BOUNDS, WAVE_BYTES = "features_f32", "window_bounds", "waveform_f32"
# Explicit Arrow types for the columns the stages make: an all-null batch must not
# come out as a null-typed (or, in numpy batches, NaN float) column.
_TYPES = {
    "id": pa.string(), "uri": pa.string(), "language": pa.string(), "task": pa.string(), ERROR: pa.string(),
    "text": pa.string(), "duration_s": pa.float64(), "segments": pa.list_(SEGMENT),
    FEATURE_BYTES: pa.binary(), WAVE_BYTES: pa.binary(), WINDOW_BOUNDS: pa.list_(pa.int64()),
}


def as_table(columns: Mapping[str, list[Any]]) -> pa.Table:
    return pa.table({k: pa.array(list(v), type=_TYPES.get(k)) for k, v in columns.items()})


def fetch_batch(batch: Mapping[str, Any], cfg: AudioConfig) -> dict[str, Any]:
    """``uri`` -> ``audio`` bytes; a missing, unreadable or oversized object becomes an error row."""
    n = batch_size_of(batch)
    out = {k: list(v) for k, v in batch.items()}
    errors, data = column(batch, ERROR, n), [None] * n
    for i, uri in enumerate(column(batch, "uri", n)):
        if errors[i] is not None:
            continue
        shown = storage.redact(str(uri))
        try:
            fs, path = storage.fs_and_path(str(uri))
            size = fs.size(path)
            if cfg.max_bytes is not None and size is not None and size > cfg.max_bytes:
                errors[i] = f"fetch: {shown} is {size} bytes, over the {cfg.max_bytes} byte limit"
                continue
            with fs.open(path, "rb") as fh:
                data[i] = fh.read()
        except FileNotFoundError:
            errors[i] = f"fetch: object not found: {shown}"
        except Exception as exc:  # noqa: BLE001 - any storage failure is this row's error
            errors[i] = f"fetch: cannot read {shown} ({type(exc).__name__})"
    out.update({"audio": data, ERROR: errors})
    return out


@lru_cache(maxsize=4)
def _feature_extractor(model: ModelConfig) -> Any:
    from transformers import WhisperFeatureExtractor

    from asr_actor.model_source import resolve_model_source

    source = resolve_model_source(model)
    return WhisperFeatureExtractor.from_pretrained(source.path, local_files_only=source.local)


def _pack(out: dict[str, Any]) -> dict[str, Any]:
    """Arrays -> bytes columns that cross Ray stages cheaply."""
    feats, bounds, waves = out.pop(FEATURES), out.pop(WINDOWS), out.pop(WAVEFORM)
    out[FEATURE_BYTES] = [b"" if f is None else np.ascontiguousarray(f, np.float32).tobytes() for f in feats]
    out[WINDOW_BOUNDS] = [[] if b is None else b.reshape(-1).tolist() for b in bounds]
    out[WAVE_BYTES] = [b"" if w is None else np.ascontiguousarray(w, np.float32).tobytes() for w in waves]
    return out


def unpack(batch: Mapping[str, Any], n_mels: int, n_frames: int) -> dict[str, Any]:
    """Inverse of :func:`_pack`: the columns the transcriber reads."""
    out = {k: list(v) for k, v in batch.items() if k not in (FEATURE_BYTES, WINDOW_BOUNDS, WAVE_BYTES)}
    out[FEATURES] = [np.frombuffer(b, np.float32).reshape(-1, n_mels, n_frames) if len(b) else None for b in batch[FEATURE_BYTES]]
    out[WINDOWS] = [np.asarray(b, np.int64).reshape(-1, 2) if len(b) else None for b in batch[WINDOW_BOUNDS]]
    out[WAVEFORM] = [np.frombuffer(b, np.float32) if len(b) else None for b in batch[WAVE_BYTES]]
    return out


class PrepareStage:
    """fetch -> decode -> windows + log-mel on CPU workers (an actor pool of its own, so Ray
    does not fuse this work into the model actors)."""

    def __init__(self, model: ModelConfig, audio: AudioConfig, chunked: bool) -> None:
        self.audio, self.chunked = audio, chunked
        self.feature_extractor = _feature_extractor(model)

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = decode_batch(fetch_batch(batch.to_pydict(), self.audio), self.audio)
        return as_table(_pack(features_batch(out, self.audio, self.feature_extractor, self.chunked)))


class TranscribeActor:
    """One model per actor (Ray Data ``ActorPoolStrategy``); CPU work was done upstream."""

    def __init__(self, transcriber_config) -> None:
        import logging

        from asr_actor.transcriber import Transcriber

        # The worker's log file (Ray's logs folder) gets one line per call: files, windows, seconds.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

        self.transcriber = Transcriber(transcriber_config)
        fe = self.transcriber.loaded.processor.feature_extractor
        self.shape = (fe.feature_size, fe.nb_max_frames)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return as_table(self.transcriber(unpack(batch.to_pydict(), *self.shape)))


class WriteStage:
    """Rows -> one Parquet part in ``data/``; returns a small summary row per file."""

    def __init__(self, run_uri: str, schema: pa.Schema, stamp: Mapping[str, Any]) -> None:
        from jobs.run_folder import RunFolder

        self.folder, self.schema, self.stamp = RunFolder(run_uri), schema, dict(stamp)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from asr_actor.schema import to_table

        rows = batch.to_pydict()
        rows["segments"] = [segs or [] for segs in rows.get("segments", [])]
        table = to_table(rows, self.schema, self.stamp, datetime.now(timezone.utc))
        self.folder.write_part(table)
        return as_table({"id": rows["id"], ERROR: rows[ERROR], "duration_s": rows["duration_s"]})
