"""The WER helper: normalisation through Whisper's English normalizer, counts through jiwer."""

from __future__ import annotations

import pytest

from asr_actor.wer import corpus_wer, normalize, word_errors


def test_normalizer_ignores_case_punctuation_numbers_and_spelling():
    assert normalize("Open at Nine, close at 6!") == normalize("open at 9 close at six")
    assert normalize("The colour grey.") == normalize("the color gray")


def test_word_errors_counts_each_kind():
    ref = "the cat sat on the mat"
    for hyp, counts in [
        ("the bat sat on the mat", (1, 0, 0)),
        ("the cat sat on mat", (0, 1, 0)),
        ("the cat sat on the mat today", (0, 0, 1)),
    ]:
        e = word_errors(ref, hyp)
        assert (e.substitutions, e.deletions, e.insertions, e.reference_words) == (*counts, 6)
        assert e.wer == pytest.approx(1 / 6)


def test_empty_sides_are_handled():
    assert word_errors("", "").wer == 0.0
    assert word_errors("two words", "").wer == 1.0
    assert word_errors("", "spurious").wer == float("inf")


def test_corpus_wer_weights_by_reference_words():
    # 1 error in 1 word + 0 in 9 words = 1/10, not the mean of 100% and 0%.
    assert corpus_wer(["yes", "a b c d e f g h i"], ["no", "a b c d e f g h i"]) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        corpus_wer(["a"], [])
