"""Word error rate with Whisper's English text normalizer, the way ASR papers report it.

jiwer does the alignment; ``whisper_normalizer``'s ``EnglishTextNormalizer`` (a
packaged copy of openai-whisper's, with its British-to-American spelling table) does
the normalisation. Nothing here is hand-written text processing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normalisation: case, punctuation, numbers, spelling."""
    return _normalizer()(text or "")


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of one or more hypotheses against their references."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_words

    def __add__(self, other: "WordErrors") -> "WordErrors":
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Counts for one pair, after normalisation (an empty side is handled, not an error)."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    ref_words, hyp_words = len(ref.split()), len(hyp.split())
    if ref_words == 0 or hyp_words == 0:
        return WordErrors(0, ref_words, hyp_words, ref_words)
    out = jiwer.process_words(ref, hyp)
    return WordErrors(out.substitutions, out.deletions, out.insertions, ref_words)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Total errors over total reference words (not a mean of per-file rates)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    total = WordErrors(0, 0, 0, 0)
    for ref, hyp in zip(references, hypotheses):
        total = total + word_errors(ref, hyp)
    return total.wer
