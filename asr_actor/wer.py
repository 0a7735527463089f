"""Error rates with Whisper's text normalizers, the way ASR papers report them: words, or characters.

jiwer does the alignment; ``whisper_normalizer`` (a packaged copy of openai-whisper's)
does the normalisation: its ``EnglishTextNormalizer`` (with the British-to-American
spelling table) for English, its ``BasicTextNormalizer`` for every other language, and
OpenCC's traditional-to-simplified table for Chinese, so both scripts score as one.
Languages written without spaces between words are scored by characters (CER), the
others by words (WER): :func:`metric`. Nothing here is hand-written text processing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

# scored by characters: written without spaces between words (and Korean, by choice: its
# space-separated units are whole phrases, so one wrong particle would fail a whole "word")
CHARACTER_LANGUAGES = frozenset({"zh", "yue", "ja", "th", "lo", "my", "km", "bo", "ko"})
CHINESE = frozenset({"zh", "yue"})  # traditional characters are turned simplified before scoring
WER, CER = "wer", "cer"


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


@lru_cache(maxsize=1)
def _basic():
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


@lru_cache(maxsize=1)
def _simplified():
    from opencc import OpenCC

    return OpenCC("t2s")


def metric(language: str | None) -> str:
    """``cer`` for a language scored by characters, else ``wer`` (English when the language is not known)."""
    return CER if language in CHARACTER_LANGUAGES else WER


def normalize(text: str, language: str | None = None) -> str:
    """Whisper's normalisation for ``language``: English's (case, punctuation, numbers, spelling) for English
    or an unknown language, the basic one (case, punctuation, symbols) for the others."""
    if language in (None, "en"):
        return _normalizer()(text or "")
    text = _basic()(text or "")
    return _simplified().convert(text) if language in CHINESE else text


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of one or more hypotheses against their references."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int  # the reference's words, or its characters where the language is scored by them

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


def word_errors(reference: str, hypothesis: str, language: str | None = None) -> WordErrors:
    """Counts for one pair in ``language`` (:func:`metric`: of words, or of characters, spaces left out),
    after normalisation (an empty side is handled, not an error)."""
    import jiwer

    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    by_chars = metric(language) == CER
    if by_chars:
        ref, hyp = "".join(ref.split()), "".join(hyp.split())
    ref_units, hyp_units = (len(ref), len(hyp)) if by_chars else (len(ref.split()), len(hyp.split()))
    if ref_units == 0 or hyp_units == 0:
        return WordErrors(0, ref_units, hyp_units, ref_units)
    out = jiwer.process_characters(ref, hyp) if by_chars else jiwer.process_words(ref, hyp)
    return WordErrors(out.substitutions, out.deletions, out.insertions, ref_units)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Total errors over total reference words (not a mean of per-file rates)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    total = WordErrors(0, 0, 0, 0)
    for ref, hyp in zip(references, hypotheses):
        total = total + word_errors(ref, hyp)
    return total.wer
