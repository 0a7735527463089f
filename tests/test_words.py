"""Word timestamps: words with their times and probabilities, from a segment's tokens (pure logic on token lists)."""

from __future__ import annotations

from asr_actor.segments import RawSegment, to_segments


def test_words_run_from_the_token_before_to_their_last_token_and_stay_in_their_segment():
    pieces = {1: " Hello", 2: ",", 3: " wor", 4: "ld", 50: ""}  # 50: a timestamp token
    decode = lambda ids: "".join(pieces[i] for i in ids)  # noqa: E731
    raw = RawSegment(1.0, 3.0, [50, 1, 2, 3, 4, 50], token_probs=[1.0, 0.9, 0.5, 0.8, 0.6, 1.0],
                     token_times=[1.0, 1.4, 1.5, 2.0, 2.6, 3.2])
    [seg] = to_segments([raw], decode, offset_s=10.0, limit_s=30.0, text_token_limit=50)
    assert [w.as_dict() for w in seg.words] == [
        {"start": 11.0, "end": 11.5, "word": " Hello,", "probability": 0.7},  # the comma stays with its word
        {"start": 11.5, "end": 12.6, "word": " world", "probability": 0.7},
    ]
    late = RawSegment(1.0, 2.0, [50, 1, 50], token_times=[1.0, 2.5, 2.6])
    [seg] = to_segments([late], decode, 0.0, 30.0, 50)
    assert [(w.start, w.end, w.probability) for w in seg.words] == [(1.0, 2.0, None)]  # clamped into the segment
