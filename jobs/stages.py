"""The job's stages as functions of a dict batch (one row per file), testable with no cluster.

fetch -> decode -> features run together in one CPU stage (:func:`prepare_stage`), the
model runs in :class:`TranscribeActor`, and :class:`WriteStage` writes Parquet parts.
Between stages the log-mel windows travel as raw float32 bytes: a plain binary column
that Arrow and Ray's object store move without conversion.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from asr_actor.config import AudioConfig, ModelConfig
from asr_actor.features import LogMel
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
def _log_mel(model: ModelConfig) -> LogMel:
    """The model's feature settings, read from its ``preprocessor_config.json`` (no torch)."""
    from asr_actor.model_source import resolve_model_source

    source = resolve_model_source(model)
    if source.local:
        return LogMel.from_folder(source.path)
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(source.path, "preprocessor_config.json", revision=model.revision)
    return LogMel.from_folder(os.path.dirname(path))


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


def lower_cpu_priority() -> None:
    """Run the calling thread only on CPU time that nothing else wants.

    Linux ``SCHED_IDLE`` (any user may lower a thread's priority); elsewhere nice 19.
    Both are per thread on Linux, so the thread that does the work must call this.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19 - os.nice(0))


class PrepareStage:
    """fetch -> decode -> windows + log-mel on CPU workers (an actor pool of its own, so Ray
    does not fuse this work into the model actors).

    With ``idle_priority`` the work runs at the lowest CPU priority: on a CPU-only node,
    where the model's threads already use every core, it fills their idle moments (on 2
    cores such a process got ~0.15 of a core while slowing ``generate`` by ~2%, measured)
    instead of taking cores from them.
    """

    def __init__(self, model: ModelConfig, audio: AudioConfig, chunked: bool, idle_priority: bool = False) -> None:
        self.audio, self.chunked, self.idle_priority = audio, chunked, idle_priority
        self.log_mel = _log_mel(model)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.idle_priority:
            lower_cpu_priority()  # every call: Ray Data may run calls on a thread of its own
        out = decode_batch(fetch_batch(batch.to_pydict(), self.audio), self.audio)
        return as_table(_pack(features_batch(out, self.audio, self.log_mel, self.chunked)))


class TranscribeActor:
    """One model per actor (Ray Data ``ActorPoolStrategy``); CPU work was done upstream.

    All torch work (loading the model and every call) runs on one thread the actor owns.
    Ray Data calls ``__init__`` on the actor's main thread and ``__call__`` on a thread of
    its own; OpenMP keeps a team of threads per calling thread, and with two teams on one
    machine libgomp stops spinning and parks its threads after every parallel region. On
    2 cores that made ``generate`` 25-30% slower (1.5 of 2 cores busy) than in a plain
    process; with one thread for everything it runs at the bare model's speed.
    """

    def __init__(self, transcriber_config) -> None:
        import logging
        from concurrent.futures import ThreadPoolExecutor

        from asr_actor.transcriber import Transcriber

        # The worker's log file (Ray's logs folder) gets one line per call: files, windows, seconds.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.transcriber = self._thread.submit(Transcriber, transcriber_config).result()
        self.shape = (self.transcriber.log_mel.n_mels, self.transcriber.log_mel.frames)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self._thread.submit(self._transcribe, batch).result()

    def _transcribe(self, batch: pa.Table) -> pa.Table:
        return as_table(self.transcriber(unpack(batch.to_pydict(), *self.shape)))


class WriteStage:
    """Rows -> one Parquet part in ``data/``; returns a small summary row per file.

    Manifest columns that only pass through do not travel with the audio: the writer
    takes them, with their exact Arrow types, from the run's frozen manifest by id.
    """

    def __init__(self, run_uri: str, schema: pa.Schema, stamp: Mapping[str, Any]) -> None:
        from asr_actor.schema import pass_through_columns
        from jobs.run_folder import RunFolder

        self.folder, self.schema, self.stamp = RunFolder(run_uri), schema, dict(stamp)
        extra = pass_through_columns(schema)
        self.manifest = self.folder.read_manifest().select(["id", *extra]) if extra else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        from asr_actor.schema import to_table

        rows = batch.to_pydict()
        rows["segments"] = [segs or [] for segs in rows.get("segments", [])]
        if self.manifest is not None:
            found = self.manifest.take(pc.index_in(batch.column("id"), value_set=self.manifest.column("id")))
            rows.update({name: found.column(name) for name in found.column_names if name != "id"})
        table = to_table(rows, self.schema, self.stamp, datetime.now(timezone.utc))
        self.folder.write_part(table)
        return as_table({"id": rows["id"], ERROR: rows[ERROR], "duration_s": rows["duration_s"]})
