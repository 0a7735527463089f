"""How the working arrays cross Ray stages: as plain Arrow columns of raw bytes.

The CPU stage's windows, log-mel features and (for sequential long-form) waveforms are
numpy arrays; Arrow and Ray's object store move a binary column without conversion, so
each array travels as its raw float32 bytes (window bounds as a flat int64 list) and is
viewed back in place on the other side. The feature shape is the model's
``(n_mels, frames)``, known to both sides from the planned :class:`LogMel`. With
``audio.channels: split`` each window's channel travels in a column of its own, one
int per window; without, that column is not there at all.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from asr_actor.schema import FEATURE_BYTES, FEATURES, WAVE_BYTES, WAVEFORM, WINDOW_BOUNDS, WINDOW_CHANNELS, WINDOWS

_WIRE_COLUMNS = (FEATURE_BYTES, WINDOW_BOUNDS, WINDOW_CHANNELS, WAVE_BYTES)


def _raw_f32(array: np.ndarray | None) -> bytes:
    return b"" if array is None else np.ascontiguousarray(array, np.float32).tobytes()


def pack(batch: Mapping[str, Any], split_channels: bool = False) -> dict[str, Any]:
    """Features, windows and waveforms -> their wire columns (the arrays are dropped).

    ``split_channels`` (``audio.channels: split``, whose windows have a channel column)
    adds the channels' column to every batch, so all batches of a run have one schema.
    """
    out = {k: v for k, v in batch.items() if k not in (FEATURES, WINDOWS, WAVEFORM)}
    out[FEATURE_BYTES] = [_raw_f32(f) for f in batch[FEATURES]]
    out[WINDOW_BOUNDS] = [None if b is None else b[:, :2].reshape(-1).tolist() for b in batch[WINDOWS]]
    if split_channels:
        out[WINDOW_CHANNELS] = [None if b is None else b[:, 2].tolist() for b in batch[WINDOWS]]
    out[WAVE_BYTES] = [_raw_f32(w) for w in batch[WAVEFORM]]  # sequential long form only: never split
    return out


def unpack(batch: Mapping[str, Any], n_mels: int, frames: int) -> dict[str, Any]:
    """Inverse of :func:`pack`: the columns the transcriber reads."""
    out = {k: list(v) for k, v in batch.items() if k not in _WIRE_COLUMNS}
    bounds = batch[WINDOW_BOUNDS]  # null: no windows planned; empty: zero windows (no speech)
    out[WINDOWS] = [None if b is None else np.asarray(b, np.int64).reshape(-1, 2) for b in bounds]
    if WINDOW_CHANNELS in batch:
        out[WINDOWS] = [None if w is None else np.column_stack([w, np.asarray(c, np.int64)])
                        for w, c in zip(out[WINDOWS], batch[WINDOW_CHANNELS])]
    out[FEATURES] = [None if b is None else np.frombuffer(f, np.float32).reshape(-1, n_mels, frames)
                     for f, b in zip(batch[FEATURE_BYTES], bounds)]
    out[WAVEFORM] = [np.frombuffer(b, np.float32) if len(b) else None for b in batch[WAVE_BYTES]]
    return out
