"""Real speech through the project's transcriber on the real converted tiny.en: every good fixture, WER against its table.

The table (tests/data/README.md) was measured with transformers' own ``generate``; the
project's path (PyAV decoding, numpy log-mel, packed windows) must stay within it, in the
dtype ``model.dtype: auto`` picks on this CPU. Where that is bfloat16, the pooled and the
long-form WER must also stay within 0.3 points of the same path in float32.
"""

from __future__ import annotations

import dataclasses

import pytest

from asr_actor.wer import word_errors
from conftest import DATA, allowed_errors, cpu_dtype, good_fixtures, measured, reference_text


def test_table_covers_every_good_fixture():
    assert set(measured()) == {p.name for p in good_fixtures()}


BFLOAT16_WER_POINTS = 0.003  # bfloat16 on CPU may cost at most 0.3 WER points against float32
LONG = "long_pauses.ogg"


def transcribe_fixtures(transcriber) -> dict[str, str]:
    """Every good fixture through ``transcriber`` in one batch (their windows packed together)."""
    paths = good_fixtures()
    out = transcriber({"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths]})
    assert out["error"] == [None] * len(paths)
    return dict(zip(out["id"], out["text"]))


@pytest.fixture(scope="module")
def project_transcripts(transcriber) -> dict[str, str]:
    return transcribe_fixtures(transcriber)


@pytest.mark.parametrize("audio", good_fixtures(), ids=lambda p: p.name)
def test_fixture_wer_within_measured(audio, project_transcripts):
    words, _ = measured()[audio.name]
    hypothesis = project_transcripts[audio.name]
    got = word_errors(reference_text(audio), hypothesis)
    assert got.reference_words == words
    allowed = allowed_errors(audio.name)
    assert got.errors <= allowed, f"{audio.name}: {got.errors} errors ({got.wer:.1%}), hypothesis: {hypothesis}"


def pooled_wer(transcripts: dict[str, str], names: list[str]) -> float:
    results = [word_errors(reference_text(DATA / "good" / name), transcripts[name]) for name in names]
    return sum(r.errors for r in results) / sum(r.reference_words for r in results)


@pytest.mark.slow
@pytest.mark.skipif(cpu_dtype() != "bfloat16", reason="model.dtype auto is float32 on this CPU (no native bfloat16)")
def test_bfloat16_on_this_cpu_holds_float32s_word_error_rate(transcriber, project_transcripts):
    from asr_actor.transcriber import Transcriber

    assert transcriber.info.dtype == "bfloat16"
    cfg = transcriber.config
    float32 = Transcriber(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dtype="float32")))
    assert float32.info.dtype == "float32"
    reference = transcribe_fixtures(float32)
    names = sorted(project_transcripts)
    assert LONG in names
    for subset in (names, [LONG]):
        got, bar = pooled_wer(project_transcripts, subset), pooled_wer(reference, subset)
        assert got <= bar + BFLOAT16_WER_POINTS, f"{subset}: bfloat16 {got:.2%} against float32 {bar:.2%}"
