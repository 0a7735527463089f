"""Timestamped segments: from ``generate``'s raw segments to file time, and a file's transcript.

With ``audio.channels: split`` every segment knows its channel; a file's transcript is
then the segments of all channels by start time, each turn (a run of segments of one
channel) opened by its mark, ``[ch0] Hello there. [ch1] Hi. [ch0] How can I help?``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Sequence

from asr_actor.guards import Signals
from asr_actor.words import Word, to_words

CHANNEL_MARK = "[ch{}]"  # opens each channel's turn in a split file's text; Whisper's normalizer drops [...]
ABSENT_WHEN_NULL = "absent_when_null"  # field metadata: a None value is left out of the segment's dict


@dataclass(frozen=True)
class RawSegment:
    """One segment as ``generate`` gave it, in seconds of its model input."""

    start: float
    end: float
    tokens: list[int]  # token ids, timestamp tokens included
    signals: Signals | None = None  # of the decoding pass the segment came from
    token_probs: list[float] | None = None  # one per token, when the pass kept its scores
    token_times: list[float] | None = None  # s, one per token, with decoding.word_timestamps


@dataclass(frozen=True)
class Segment:
    """A segment of a transcript: the fields, in order, of the output's segment struct (:data:`asr_actor.schema.SEGMENT`).

    start, end and text are the contract (DESIGN.md) and come first; the rest are nullable,
    added later (:mod:`asr_actor.guards`, :mod:`asr_actor.words`, ``audio.channels: split``).
    """

    start: float  # s from the start of the file
    end: float  # s
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    words: tuple[Word, ...] | None = None  # with decoding.word_timestamps
    # with audio.channels: split; null with mix, where it is absent from the dict (absent is null in Arrow,
    # and mix mode's JSON lines stay as they were)
    channel: int | None = field(default=None, metadata={ABSENT_WHEN_NULL: True})

    def as_dict(self) -> dict[str, object]:
        """The segment as an element of a row's segments column: every field, its words as dicts."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get(ABSENT_WHEN_NULL):
                continue
            out[f.name] = [w.as_dict() for w in value] if isinstance(value, tuple) else value
        return out


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def to_segments(
    raw: Sequence[RawSegment],
    decode: Callable[[list[int]], str],
    offset_s: float,
    limit_s: float,
    text_token_limit: int,
    channel: int | None = None,
) -> list[Segment]:
    """Decode each raw segment's text and shift it by ``offset_s`` (where its input starts).

    Times are clamped to ``[0, limit_s]`` of the input (Whisper may stamp the end of the
    padding) and kept in order; segments with no text are dropped. Token ids at or above
    ``text_token_limit`` (timestamps, specials) are not words. ``channel``: the input's
    channel (``audio.channels: split``), given to every segment.
    """
    out: list[Segment] = []
    floor = 0.0
    for seg in raw:
        text = decode(list(seg.tokens)).strip()
        if not text:
            continue
        start = min(max(seg.start, floor), limit_s)
        end = min(max(seg.end, start), limit_s)
        words = None
        if seg.token_times is not None:
            words = tuple(to_words(seg.tokens, seg.token_times, seg.token_probs, decode, text_token_limit,
                                   offset_s, (offset_s + start, offset_s + end)))
        sig = seg.signals
        out.append(Segment(
            round(float(offset_s + start), 3), round(float(offset_s + end), 3), text,
            _rounded(sig.avg_logprob) if sig else None, _rounded(sig.no_speech_prob) if sig else None,
            _rounded(sig.compression_ratio) if sig else None, words, channel,
        ))
        floor = end
    return out


def stitch(windows: Sequence[Sequence[Segment]]) -> tuple[str, list[Segment]]:
    """One transcript and its segments from a file's windows, in order.

    Segments with a channel (split audio) are ordered by start time over all channels,
    and each channel's turn in the text starts with its :data:`CHANNEL_MARK`.
    """
    segments = [seg for window in windows for seg in window]
    if all(seg.channel is None for seg in segments):
        return " ".join(seg.text for seg in segments), segments
    segments.sort(key=lambda seg: (seg.start, seg.channel))  # stable: a channel's own order stays
    parts, turn = [], None
    for seg in segments:
        if seg.channel != turn:
            parts.append(CHANNEL_MARK.format(seg.channel))
            turn = seg.channel
        parts.append(seg.text)
    return " ".join(parts), segments
