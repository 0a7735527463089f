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


def plan_speech_windows(waveform: np.ndarray, spans: list[tuple[int, int]], min_window_s: float) -> list[Window]:
    """Windows of at most 30 s that cover the stretches of speech ``spans`` (sorted
    ``[start, end)`` samples) and skip the pauses between them.

    A window starts where speech starts and takes every stretch that ends within 30 s;
    it ends after the last of them, in the pause, unless that leaves it shorter than
    ``min_window_s`` while more speech follows within 30 s: then it is cut in that
    speech at its quietest moment, as :func:`plan_windows` cuts, and the next window
    starts at the cut. Audio outside every window is never decoded; with no speech
    there are no windows.
    """
    min_samples = int(min_window_s * SAMPLE_RATE)
    windows: list[Window] = []
    i, start = 0, None
    while i < len(spans):
        start = spans[i][0] if start is None else start
        limit = start + WINDOW_SAMPLES
        j = i
        while j < len(spans) and spans[j][1] <= limit:
            j += 1  # spans[i:j] end inside this window
        if j > i and (j == len(spans) or spans[j][0] >= limit or spans[j - 1][1] - start >= min_samples):
            windows.append(Window(start, spans[j - 1][1]))  # ends in a pause
            i, start = j, None
        else:  # spans[j] runs past the window: cut inside it
            cut = _quietest_point(waveform, max(spans[j][0], start + min_samples), limit)
            windows.append(Window(start, cut))
            i, start = j, cut
    return windows
