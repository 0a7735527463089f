"""Cut audio into Whisper's 30 s windows (their features: :mod:`asr_actor.features`).

Long audio is cut at its quietest moment between ``min_window_s`` and 30 s after the
previous cut (energy over 100 ms frames, 10 ms apart), so a cut falls in a pause or
between words and each window can be decoded on its own, in any batch, with no word
split across a seam. Audio of 30 s or less is one window: a short file costs one
window, never more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr_actor.audio import SAMPLE_RATE

WINDOW_S = 30.0  # s, Whisper's fixed encoder window
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE)
ENERGY_FRAME = SAMPLE_RATE // 10  # samples (100 ms): long enough to span a gap between words
ENERGY_HOP = SAMPLE_RATE // 100  # samples (10 ms): cut-point resolution


@dataclass(frozen=True)
class Window:
    """A slice ``[start, end)`` of a file's samples."""

    start: int
    end: int

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def _quietest_point(waveform: np.ndarray, lo: int, hi: int) -> int:
    """Centre of the 100 ms frame with the least energy whose centre lies in ``[lo, hi]``.

    Among equally quiet frames the latest wins, which keeps windows long.
    """
    half = ENERGY_FRAME // 2
    first, last = max(lo - half, 0), min(hi + half, len(waveform))
    segment = waveform[first:last].astype(np.float64)
    if len(segment) < ENERGY_FRAME:
        return hi
    cumulative = np.concatenate(([0.0], np.cumsum(segment * segment)))
    starts = np.arange(0, len(segment) - ENERGY_FRAME + 1, ENERGY_HOP)
    energy = cumulative[starts + ENERGY_FRAME] - cumulative[starts]
    centres = first + starts + half
    valid = (centres >= lo) & (centres <= hi)
    if not valid.any():
        return hi
    energy, centres = energy[valid], centres[valid]
    best = len(energy) - 1 - int(np.argmin(energy[::-1]))
    return int(centres[best])


def plan_windows(waveform: np.ndarray, min_window_s: float) -> list[Window]:
    """Cut points for ``waveform``: windows of at most 30 s, each ending in its quietest spot."""
    total = len(waveform)
    min_samples = int(min_window_s * SAMPLE_RATE)
    windows: list[Window] = []
    start = 0
    while total - start > WINDOW_SAMPLES:
        cut = _quietest_point(waveform, start + min_samples, start + WINDOW_SAMPLES)
        windows.append(Window(start, cut))
        start = cut
    windows.append(Window(start, total))
    return windows
