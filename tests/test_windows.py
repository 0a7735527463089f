"""Window planning: where 30 s windows are cut, pure logic on synthetic signals."""

from __future__ import annotations

import numpy as np

from asr_actor.audio import SAMPLE_RATE
from asr_actor.windows import WINDOW_SAMPLES, plan_windows


def _speech_with_gaps(total_s: float, gaps_s: list[float], gap_len_s: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(0)
    w = (0.3 * rng.standard_normal(int(total_s * SAMPLE_RATE))).astype(np.float32)
    for g in gaps_s:
        w[int(g * SAMPLE_RATE) : int((g + gap_len_s) * SAMPLE_RATE)] = 0.0
    return w


def _check_cover(windows, total):
    assert windows[0].start == 0 and windows[-1].end == total
    for a, b in zip(windows, windows[1:]):
        assert a.end == b.start  # contiguous: no sample lost or repeated
    assert all(0 < w.end - w.start <= WINDOW_SAMPLES for w in windows)


def test_short_audio_is_one_window():
    for seconds in (0.1, 12.0, 30.0):
        w = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
        assert len(plan_windows(w, 20.0)) == 1


def test_cuts_fall_in_the_gaps():
    gaps = [24.0, 51.0, 77.5]
    w = _speech_with_gaps(100.0, gaps)
    windows = plan_windows(w, 20.0)
    _check_cover(windows, len(w))
    assert len(windows) == 4
    for cut, gap in zip([x.end for x in windows[:-1]], gaps):
        assert gap * SAMPLE_RATE <= cut <= (gap + 0.4) * SAMPLE_RATE


def test_gapless_audio_still_gets_windows_of_at_most_30s():
    w = _speech_with_gaps(95.0, [])
    windows = plan_windows(w, 20.0)
    _check_cover(windows, len(w))
    assert all(w_.end - w_.start >= 20 * SAMPLE_RATE for w_ in windows[:-1])
