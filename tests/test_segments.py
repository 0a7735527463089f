"""Segment parsing: raw token spans into segments in file time, and stitching windows (pure logic on token lists)."""

from __future__ import annotations

from asr_actor.segments import RawSegment, Segment, stitch, to_segments


def _decode(ids):
    return " ".join(f"w{i}" for i in ids)


def test_to_segments_offsets_clamps_and_drops_empty():
    raw = [RawSegment(0.0, 2.4, [1, 2]), RawSegment(2.4, 2.4, []), RawSegment(2.4, 5.0, [3]), RawSegment(27.0, 30.0, [4])]
    segs = to_segments(raw, _decode, offset_s=60.0, limit_s=28.0, text_token_limit=100)
    assert segs == [Segment(60.0, 62.4, "w1 w2"), Segment(62.4, 65.0, "w3"), Segment(87.0, 88.0, "w4")]


def test_to_segments_keeps_times_in_order():
    segs = to_segments([RawSegment(3.0, 4.0, [1]), RawSegment(2.0, 5.0, [2])], _decode, 0.0, 10.0, 100)
    assert [(s.start, s.end) for s in segs] == [(3.0, 4.0), (4.0, 5.0)]


def test_stitch_joins_in_order():
    text, segs = stitch([[Segment(0, 1, "Hello there.")], [Segment(30, 31, "General Kenobi.")]])
    assert text == "Hello there. General Kenobi." and len(segs) == 2
