"""The transcriber on the real tiny.en and real speech: batches, long audio, bad rows."""

from __future__ import annotations

import numpy as np
import pytest

from asr_actor.audio import decode_audio
from asr_actor.config import DecodingConfig, TranscriberConfig
from asr_actor.transcriber import Transcriber
from asr_actor.wer import word_errors
from conftest import BAD, GOOD, reference_text, reference_transcribe

LONG = GOOD / "long_pauses.ogg"
SHORT = ["wav16k_mono.wav", "flac16k_mono.flac", "aac24k_mono.m4a", "opus48k_mono.ogg"]


def _batch(paths, **extra):
    return {"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths], **extra}


@pytest.fixture(scope="module")
def long_reference_wer(hf_whisper):
    """transformers' sequential long form in float32, the reference precision: the bar in every dtype."""
    model, processor = hf_whisper
    return word_errors(reference_text(LONG), reference_transcribe(model, processor, decode_audio(LONG.read_bytes()).waveform)).wer


def test_mixed_batch_one_result_per_row(transcriber, long_reference_wer):
    paths = [GOOD / SHORT[0], BAD / "empty.wav", LONG, BAD / "truncated.flac", GOOD / SHORT[1],
             BAD / "random_bytes.wav", BAD / "no_audio_stream.mp4", GOOD / SHORT[2]]
    out = transcriber(_batch(paths, uri=[f"file://{p}" for p in paths]))
    assert out["id"] == [p.name for p in paths]  # order and pass-through columns kept
    assert out["uri"] == [f"file://{p}" for p in paths]
    assert "audio" not in out and "features" not in out
    for i, p in enumerate(paths):
        if p.parent == BAD:
            assert out["text"][i] is None and out["segments"][i] == []
            assert out["error"][i].startswith("decode: "), out["error"][i]
        else:
            assert out["error"][i] is None and out["language"][i] == "en"
            assert out["duration_s"][i] > 4
    long_i = paths.index(LONG)
    long_wer = word_errors(reference_text(LONG), out["text"][long_i]).wer
    assert long_wer <= long_reference_wer + 0.005, (long_wer, long_reference_wer)
    segs = out["segments"][long_i]
    assert len(segs) > 20
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(segs, segs[1:]))  # ordered, no overlap
    assert segs[-1]["end"] <= out["duration_s"][long_i] + 0.05
    assert out["text"][long_i] == " ".join(s["text"] for s in segs)
    assert len(segs) == len({(s["start"], s["end"]) for s in segs})  # each window's segments once


def test_bad_rows_do_not_change_good_rows(transcriber):
    good = [GOOD / n for n in SHORT]
    alone = transcriber(_batch(good))
    mixed = transcriber(_batch([BAD / "text_file.m4a", *good, BAD / "truncated.mp3"]))
    assert mixed["text"][1:-1] == alone["text"]
    for name, text in zip(SHORT, alone["text"]):
        assert word_errors(reference_text(GOOD / name), text).wer <= 0.2


@pytest.mark.slow  # long audio: the full suite's, not the fast lane's
def test_words_at_seams_are_neither_lost_nor_repeated(transcriber):
    """Fixtures glued with no pause between them: > 30 s, so cuts fall inside running speech."""
    names = ["flac16k_mono.flac", "wav16k_mono.wav", "aac24k_mono.m4a", "mp3_22k_mono.mp3",
             "opus48k_mono.ogg", "video_with_audio.mp4", "wav44k_stereo.wav"]
    waves = [decode_audio((GOOD / n).read_bytes()).waveform for n in names]
    trimmed = [w[np.argmax(np.abs(w) > 0.02) : len(w) - np.argmax(np.abs(w[::-1]) > 0.02)] for w in waves]
    glued = np.concatenate(trimmed * 2)
    assert len(glued) > 60 * 16_000
    out = transcriber({"id": ["glued"], "waveform": [glued]})
    reference = " ".join([reference_text(GOOD / n) for n in names] * 2)
    separate = sum(word_errors(reference_text(GOOD / n), t).errors
                   for n, t in zip(names, transcriber({"id": names, "waveform": trimmed})["text"])) * 2
    got = word_errors(reference, out["text"][0])
    assert got.errors <= separate + 2, (got, separate, out["text"][0])


def test_short_files_cost_one_window(transcriber):
    prepared = transcriber.preprocess(_batch([GOOD / n for n in SHORT] + [LONG]))
    assert [len(f) for f in prepared["features"][:-1]] == [1, 1, 1, 1]
    bounds = prepared["windows"][-1] / 16_000
    assert len(prepared["features"][-1]) == len(bounds)
    assert all(20 <= e - s <= 30 for s, e in bounds[:-1]) and bounds[-1][1] == pytest.approx(199.11, abs=0.01)
    assert prepared["features"][0].shape == (1, 80, 3000)


@pytest.mark.slow  # long audio: the full suite's, not the fast lane's
def test_sequential_option_is_transformers_long_form(transcriber, reference_transcript):
    waveform = decode_audio(LONG.read_bytes()).waveform
    sequential = Transcriber(TranscriberConfig(model=transcriber.config.model, decoding=DecodingConfig(long_form="sequential")))
    out = sequential({"id": ["long"], "waveform": [waveform]})
    assert out["error"][0] is None
    assert out["text"][0] == reference_transcript(LONG)
    assert out["segments"][0][0]["start"] == 0.0


@pytest.mark.parametrize(
    "extra, error",
    [
        ({"task": ["translate"]}, "transcribe: model {m} is English-only and cannot translate"),
        ({"language": ["fr"]}, "transcribe: model {m} is English-only, cannot take language 'fr'"),
        ({"task": ["summarize"]}, "transcribe: unknown task 'summarize'"),
        ({"error": ["fetch: object not found"]}, "fetch: object not found"),
    ],
)
def test_row_options_that_cannot_work_are_error_rows(transcriber, extra, error):
    paths = [GOOD / SHORT[0], GOOD / SHORT[1]]
    extra = {k: v + [None] for k, v in extra.items()}
    out = transcriber(_batch(paths, **extra))
    assert out["error"][0].startswith(error.format(m=transcriber.config.model.id))
    assert out["error"][1] is None and out["text"][1]
