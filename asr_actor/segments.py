"""Timestamped segments: from ``generate``'s raw segments to file time, and a file's transcript."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

RawSegment = tuple[float, float, list[int]]  # start s, end s (within one model input), token ids


@dataclass(frozen=True)
class Segment:
    start: float  # s from the start of the file
    end: float  # s
    text: str

    def as_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "text": self.text}


def to_segments(
    raw: Sequence[RawSegment],
    decode: Callable[[list[int]], str],
    offset_s: float,
    limit_s: float,
) -> list[Segment]:
    """Decode each raw segment's text and shift it by ``offset_s`` (where its input starts).

    Times are clamped to ``[0, limit_s]`` of the input (Whisper may stamp the end of the
    padding) and kept in order; segments with no text are dropped.
    """
    out: list[Segment] = []
    floor = 0.0
    for start, end, tokens in raw:
        text = decode(list(tokens)).strip()
        if not text:
            continue
        start = min(max(start, floor), limit_s)
        end = min(max(end, start), limit_s)
        out.append(Segment(round(float(offset_s + start), 3), round(float(offset_s + end), 3), text))
        floor = end
    return out


def stitch(windows: Sequence[Sequence[Segment]]) -> tuple[str, list[Segment]]:
    """One transcript and its segments from a file's windows, in order."""
    segments = [seg for window in windows for seg in window]
    return " ".join(seg.text for seg in segments), segments
