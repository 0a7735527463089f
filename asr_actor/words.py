"""Words with times and probabilities, from a segment's tokens and transformers' token timestamps.

transformers aligns each token to the audio by dynamic time warping over the
cross-attention of the model's alignment heads (``return_token_timestamps``); a word is
the run of text tokens from one that starts with a space to the next such token
(punctuation stays with its word, as in OpenAI's ``word_timestamps``), its probability
the mean of its tokens' probabilities. transformers stamps each token with the time the
alignment path leaves it, its end: a word runs from the end of the token before it to
the end of its last token (measured on festival's word timings: the token's own stamp
taken as its start put every word about 0.35 s late). Times are clamped into the segment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Word:
    """A word of a segment: the fields, in order, of the output's word struct (:data:`asr_actor.schema.WORD`)."""

    start: float  # s from the start of the file
    end: float
    word: str  # with its leading space, as Whisper writes it
    probability: float | None

    def as_dict(self) -> dict[str, object]:
        """The word as an element of a segment's ``words`` list."""
        return asdict(self)


def _groups(tokens: Sequence[int], decode: Callable[[list[int]], str], text_limit: int) -> list[list[int]]:
    """Positions of each word's tokens: a token starting with a space (or the first) opens a word."""
    groups: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token >= text_limit:
            continue
        piece = decode([token])
        if not groups or piece.startswith(" ") or not piece.strip().isascii():
            groups.append([i])
        else:
            groups[-1].append(i)
    return [g for g in groups if decode([tokens[i] for i in g]).strip()]


def to_words(
    tokens: Sequence[int], times: Sequence[float], probs: Sequence[float] | None,
    decode: Callable[[list[int]], str], text_limit: int, offset_s: float, bounds: tuple[float, float],
) -> list[Word]:
    lo, hi = bounds
    words = []
    for group in _groups(tokens, decode, text_limit):
        start = offset_s + times[max(group[0] - 1, 0)]  # the end of the token before
        end = offset_s + times[group[-1]]
        start = min(max(start, lo), hi)
        end = min(max(end, start), hi)
        p = None if not probs else round(sum(probs[i] for i in group if i < len(probs)) / len(group), 4)
        words.append(Word(round(start, 3), round(end, 3), decode([tokens[i] for i in group]), p))
    return words
