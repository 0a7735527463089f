"""The CPU work on a dict batch (one row per file): decode audio bytes, then cut windows and compute features.

Both are plain functions of a columnar batch (``{column: sequence}``), so they run the
same in the job's CPU stage, inside the transcriber, or in a unit test.
A row that already carries an ``error`` passes through untouched; a row that fails
here gets one and keeps going as an error row.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from asr_actor.audio import decode_audio
from asr_actor.config import AudioConfig
from asr_actor.features import LogMel
from asr_actor.schema import AUDIO, DURATION, ERROR, FEATURES, WAVEFORM, WINDOWS
from asr_actor.vad import SpeechDetector
from asr_actor.windows import WINDOW_SAMPLES, Window, plan_speech_windows, plan_windows


def batch_size_of(batch: Mapping[str, Any]) -> int:
    sizes = {len(v) for v in batch.values()}
    if len(sizes) > 1:
        raise ValueError(f"columns of unequal length in batch: {sorted(sizes)}")
    return sizes.pop() if sizes else 0


def column(batch: Mapping[str, Any], name: str, n: int) -> list[Any]:
    """A column as a list, or ``n`` Nones when the batch does not have it."""
    return list(batch[name]) if name in batch else [None] * n


def decode_batch(batch: Mapping[str, Any], cfg: AudioConfig) -> dict[str, Any]:
    """``audio`` bytes -> ``waveform``, ``duration_s`` and ``error`` (the bytes are dropped)."""
    n = batch_size_of(batch)
    out = {k: list(v) for k, v in batch.items() if k != AUDIO}
    errors, data = column(batch, ERROR, n), column(batch, AUDIO, n)
    waveforms, durations = [None] * n, [0.0] * n
    for i in range(n):
        if errors[i] is not None:
            continue
        if data[i] is None:
            errors[i] = "decode: no audio bytes in the row"
            continue
        if cfg.max_bytes is not None and len(data[i]) > cfg.max_bytes:
            errors[i] = f"decode: file is {len(data[i])} bytes, over the {cfg.max_bytes} byte limit"
            continue
        result = decode_audio(bytes(data[i]), cfg.max_duration_s, split_channels=cfg.channels == "split")
        waveforms[i], durations[i], errors[i] = result.waveform, result.duration_s, result.error
    out.update({WAVEFORM: waveforms, DURATION: durations, ERROR: errors})
    return out


def window_batch(
    batch: Mapping[str, Any], cfg: AudioConfig, log_mel: LogMel, windowed_long_form: bool = True,
    speech: SpeechDetector | None = None,
) -> dict[str, Any]:
    """``waveform`` -> ``windows`` and their log-mel ``features``.

    With ``windowed_long_form`` False (the sequential long-form option), audio over 30 s
    keeps its waveform and gets no windows: transformers' long-form ``generate`` cuts it.
    With a ``speech`` detector (``audio.vad``) windows cover only its speech: a file
    with none gets zero windows (an empty transcript, no model call).
    With ``audio.channels: split`` each channel (a row of a ``[channels, samples]``
    waveform; a 1-D one is channel 0) is windowed on its own, channel by channel, and
    each window's bounds get its channel as a third column.
    """
    n = batch_size_of(batch)
    out = {k: list(v) for k, v in batch.items()}
    waveforms, errors = column(batch, WAVEFORM, n), column(batch, ERROR, n)
    features, windows = [None] * n, [None] * n
    split = cfg.channels == "split"
    for i in range(n):
        w = waveforms[i]
        if errors[i] is not None or w is None:
            continue
        if w.shape[-1] > WINDOW_SAMPLES and not windowed_long_form:
            continue
        bounds, pieces = [], []
        for channel, plane in enumerate(np.atleast_2d(w) if split else [w]):
            for p in _plan(plane, cfg, speech):
                bounds.append([p.start, p.end, channel] if split else [p.start, p.end])
                pieces.append(plane[p.start : p.end])
        windows[i] = np.array(bounds, dtype=np.int64).reshape(-1, 3 if split else 2)
        features[i] = log_mel(pieces)
        waveforms[i] = None  # the windows carry everything the model needs
    out.update({WAVEFORM: waveforms, FEATURES: features, WINDOWS: windows})
    return out


def _plan(waveform: np.ndarray, cfg: AudioConfig, speech: SpeechDetector | None) -> list[Window]:
    """The windows of one channel: all of it, or only its speech."""
    if speech is None:
        return plan_windows(waveform, cfg.min_window_s)
    return plan_speech_windows(waveform, speech.spans(waveform), cfg.min_window_s)
