"""Whisper's log-mel features in numpy, without torch or transformers.

The same computation as transformers' ``WhisperFeatureExtractor`` (and OpenAI's
``log_mel_spectrogram``): each chunk zero-padded to 30 s, a centred STFT (400-sample
periodic Hann window, hop 160, reflect padding), power spectrum without the last frame,
Slaney-style mel filters, ``log10`` clamped at 1e-10, floored at the window's maximum
minus 8, then ``(x + 4) / 4``. The spectrum is computed in float64, so values agree
with the float32 reference to ~1e-5 (tested). The CPU workers of the job use this and so
never import torch: they start in a fraction of the time and take a fraction of the
memory of a worker that loads transformers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from asr_actor.audio import SAMPLE_RATE
from asr_actor.windows import WINDOW_S, WINDOW_SAMPLES

N_FFT = 400  # samples per STFT frame (25 ms at 16 kHz)
HOP_LENGTH = 160  # samples between frames (10 ms)
LOG_FLOOR = 1e-10  # power floor before log10
DYNAMIC_RANGE = 8.0  # log10 units kept below each window's maximum


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = 3.0 * hz / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = 200.0 * mel / 3.0
    log_part = 1000.0 * np.exp(np.log(6.4) * (mel - 15.0) / 27.0)
    return np.where(mel >= 15.0, log_part, linear)


def mel_filters(n_mels: int, n_fft: int, sampling_rate: int) -> np.ndarray:
    """``[n_fft // 2 + 1, n_mels]`` triangular filters from 0 Hz to Nyquist, area-normalised (Slaney)."""
    bins = np.linspace(0.0, sampling_rate // 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sampling_rate / 2), n_mels + 2))
    widths = np.diff(edges)
    offsets = edges[None, :] - bins[:, None]  # [bins, n_mels + 2]
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


@dataclass(frozen=True)
class LogMel:
    """The feature settings of one Whisper model (its ``preprocessor_config.json``)."""

    n_mels: int = 80  # 128 for large-v3
    sampling_rate: int = SAMPLE_RATE  # Hz
    n_fft: int = N_FFT  # samples per STFT frame
    hop_length: int = HOP_LENGTH  # samples between frames
    chunk_samples: int = WINDOW_SAMPLES  # every chunk is padded to one 30 s window
    frames: int = WINDOW_SAMPLES // HOP_LENGTH  # feature frames per chunk

    # preprocessor_config.json key of each field, as WhisperFeatureExtractor names them
    _KEYS = {"n_mels": "feature_size", "sampling_rate": "sampling_rate", "n_fft": "n_fft",
             "hop_length": "hop_length", "chunk_samples": "n_samples", "frames": "nb_max_frames"}

    @classmethod
    def from_preprocessor_config(cls, config: Mapping[str, Any]) -> "LogMel":
        """Settings from a ``preprocessor_config.json`` mapping (Whisper's defaults where it has none)."""
        return cls(**{name: int(config[key]) for name, key in cls._KEYS.items() if key in config})

    def to_preprocessor_config(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` that ``WhisperFeatureExtractor`` reads these settings from."""
        return {
            "feature_extractor_type": "WhisperFeatureExtractor",
            "processor_class": "WhisperProcessor",
            **{key: getattr(self, name) for name, key in self._KEYS.items()},
            "chunk_length": int(WINDOW_S),
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": False,
        }

    @classmethod
    def of(cls, feature_extractor: Any) -> "LogMel":
        """Settings of a transformers ``WhisperFeatureExtractor``."""
        return cls(**{name: int(getattr(feature_extractor, key)) for name, key in cls._KEYS.items()})

    def differences(self, other: "LogMel") -> list[str]:
        """``name: mine != theirs`` for every setting that differs (empty when they match)."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {mine[k]} != {theirs[k]}" for k in mine if mine[k] != theirs[k]]

    @cached_property
    def _filters(self) -> np.ndarray:
        return mel_filters(self.n_mels, self.n_fft, self.sampling_rate)

    @cached_property
    def _window(self) -> np.ndarray:
        n = np.arange(self.n_fft)
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.n_fft)  # periodic Hann

    def one(self, chunk: np.ndarray) -> np.ndarray:
        """``[n_mels, frames]`` float32 features of one chunk of at most 30 s."""
        audio = np.zeros(self.chunk_samples, dtype=np.float64)
        samples = np.asarray(chunk, dtype=np.float64)[: self.chunk_samples]
        audio[: len(samples)] = samples
        half = self.n_fft // 2
        padded = np.pad(audio, half, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop_length]
        power = np.abs(np.fft.rfft(frames * self._window, axis=-1)) ** 2  # [frames + 1, bins]
        mel = power[:-1] @ self._filters  # [frames, n_mels]
        log = np.log10(np.maximum(mel, LOG_FLOOR))
        log = np.maximum(log, log.max() - DYNAMIC_RANGE)
        return ((log + 4.0) / 4.0).T.astype(np.float32)

    def __call__(self, chunks: Sequence[np.ndarray]) -> np.ndarray:
        """``[len(chunks), n_mels, frames]`` float32 features."""
        out = np.empty((len(chunks), self.n_mels, self.frames), dtype=np.float32)
        for i, chunk in enumerate(chunks):
            out[i] = self.one(chunk)
        return out
