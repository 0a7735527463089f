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


def test_languages_without_spaces_are_scored_by_characters_after_the_basic_normalizer():
    from asr_actor.wer import CER, WER, metric

    assert [metric(lang) for lang in ("ja", "zh", "yue", "th", "lo", "my", "km", "ko")] == [CER] * 8
    assert [metric(lang) for lang in ("en", None, "es", "sv", "de")] == [WER] * 5
    # Japanese: one "word" by spaces; by characters one wrong kana and one more of 9 (punctuation and spaces left out)
    japanese = word_errors("今日は、いい天気です。", "今日は いい天気でした", "ja")
    assert (japanese.reference_words, japanese.substitutions, japanese.insertions, japanese.deletions) == (9, 1, 1, 0)
    # Chinese: traditional and simplified characters are one text
    assert word_errors("我們今天開會。", "我们今天开会", "zh").errors == 0
    assert word_errors("我們今天開會。", "我们明天开会", "zh").wer == pytest.approx(1 / 6)
    # Spanish: the basic normalizer (case, punctuation; accents kept), then words
    assert normalize("¿Dónde ESTÁ la biblioteca?", "es").split() == ["dónde", "está", "la", "biblioteca"]
    spanish = word_errors("¿Dónde está la biblioteca?", "donde esta la biblioteca", "es")
    assert (spanish.reference_words, spanish.substitutions) == (4, 2)  # an accent is part of the word
    # English keeps Whisper's English normalizer (numbers, spelling)
    assert word_errors("The colour is ten.", "the color is 10", "en").errors == 0
    assert word_errors("", "", "ja").wer == 0.0 and word_errors("雨", "", "ja").deletions == 1


def test_evaluate_scores_each_row_in_its_language_and_tells_the_metric(tmp_path):
    import json

    import pyarrow as pa

    from jobs.report.evaluate import evaluate_run
    from jobs.state.run_folder import RunFolder

    run = RunFolder(str(tmp_path / "r1"))
    ids = ["en1", "es1", "ja1", "ja2", "ja3"]
    run.create({"run_id": "r1"}, pa.table({"id": ids, "uri": ids}))
    run.write_part(pa.table({"id": ids, "text": ["the colour is ten", "donde está la biblioteca", "今日はいい天気でした", "雨です",
                                                 "it is raining"],
                             "language": ["en", "es", "ja", "ja", "ja"],
                             "task": ["transcribe"] * 4 + ["translate"], "error": [None] * 5, "model": ["m"] * 5}))
    refs = tmp_path / "refs.jsonl"
    refs.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(
        ids, ["The color is 10.", "¿Dónde está la biblioteca?", "今日は、いい天気です。", "雨です。", "It's raining."])))
    report = evaluate_run(str(run.uri), str(refs))
    by_id = {r["id"]: r for r in report["rows"]}
    assert by_id["en1"] == {"id": "en1", "language": "en", "task": "transcribe", "wer": 0.0, "errors": 0, "words": 4,
                            "error": None}
    assert by_id["es1"]["wer"] == 0.25 and by_id["es1"]["words"] == 4
    assert by_id["ja1"] == {"id": "ja1", "language": "ja", "task": "transcribe", "cer": 0.2222, "errors": 2,
                            "characters": 9, "error": None}
    # heard in Japanese, written in English: scored by English words (Whisper's English normalizer: it's = it is)
    assert by_id["ja3"] == {"id": "ja3", "language": "ja", "task": "translate", "wer": 0.0, "errors": 0, "words": 3,
                            "error": None}
    assert report["languages"] == [
        {"language": "en", "metric": "wer", "wer": 0.0, "errors": 0, "words": 7, "files": 2},
        {"language": "es", "metric": "wer", "wer": 0.25, "errors": 1, "words": 4, "files": 1},
        {"language": "ja", "metric": "cer", "cer": round(2 / 12, 4), "errors": 2, "characters": 12, "files": 2}]
    assert report["overall"] == {"wer": round(1 / 11, 4), "words": 11, "cer": round(2 / 12, 4), "characters": 12,
                                 "files": 5}
