"""Transcript quality on the real converted tiny.en: nothing from non-speech, parity with transformers, words.

Non-speech fixtures (``tests/data/nonspeech/``, digital silence, a 0.1 s clip) must give
ok rows with no text; every good fixture of 30 s or less must decode to what
transformers' own ``generate`` gives for its feature extractor's output with the same
options; word timestamps must follow festival's own word timings.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from asr_actor.audio import decode_audio
from asr_actor.config import DecodingConfig, TranscriberConfig
from asr_actor.guards import compression_ratio, judge
from asr_actor.transcriber import Transcriber
from conftest import BAD, DATA, GOOD, good_fixtures

NONSPEECH = sorted((DATA / "nonspeech").iterdir()) + [BAD / "silence_30s.flac", BAD / "short_0.1s.wav"]
SHORT = [p for p in good_fixtures() if decode_audio(p.read_bytes()).duration_s <= 30]
TIMED = sorted(GOOD.glob("*.words.tsv"))


@pytest.mark.parametrize("audio", NONSPEECH, ids=lambda p: p.name)
def test_non_speech_gives_an_ok_row_with_no_text(audio, transcriber):
    out = transcriber({"id": [audio.name], "audio": [audio.read_bytes()]})
    assert out["error"] == [None] and out["text"] == [""] and out["segments"] == [[]]


def test_silence_inside_speech_loses_no_word(transcriber):
    audio = GOOD / "silence_inside_speech.flac"
    out = transcriber({"id": ["x"], "audio": [audio.read_bytes()]})
    first, second = out["segments"][0]
    assert first["text"] == "The first part of the call ends here."
    assert second["text"] == "After a long quiet pause, the second speaker finally answers the question."
    assert second["start"] > 14.0  # after the silence, not stretched over it


@pytest.fixture(scope="module")
def reference_tokens_text(hf_whisper_auto):
    """transformers' own generate on its feature extractor's output, with the job's decoding options."""
    import torch

    model, processor = hf_whisper_auto
    d = DecodingConfig()

    def get(path):
        waveform = decode_audio(path.read_bytes()).waveform
        feats = processor.feature_extractor(waveform, sampling_rate=16_000, return_tensors="pt").input_features
        feats = feats.to(model.dtype)
        with torch.inference_mode():
            out = model.generate(feats, num_beams=1, do_sample=False, return_timestamps=True, return_segments=True,
                                 condition_on_prev_tokens=False, temperature=d.temperatures,
                                 no_speech_threshold=d.no_speech_threshold, logprob_threshold=d.logprob_threshold,
                                 compression_ratio_threshold=d.compression_ratio_threshold)
        return [processor.tokenizer.decode(s["tokens"], skip_special_tokens=True).strip() for s in out["segments"][0]]

    return get


@pytest.mark.parametrize("audio", SHORT, ids=lambda p: p.name)
def test_short_files_decode_as_transformers_generate(audio, transcriber, reference_tokens_text):
    out = transcriber({"id": [audio.name], "audio": [audio.read_bytes()]})
    assert [s["text"] for s in out["segments"][0]] == [t for t in reference_tokens_text(audio) if t]


def test_every_segment_reports_its_pass_signals(transcriber):
    out = transcriber({"id": ["a"], "audio": [(GOOD / "flac16k_mono.flac").read_bytes()]})
    for seg in out["segments"][0]:
        assert -1.0 < seg["avg_logprob"] <= 0 and 0 <= seg["no_speech_prob"] < 0.1 and 0.5 < seg["compression_ratio"] < 2.4
        assert seg["words"] is None  # word timestamps are off by default


PROMPTED = {  # fixture: (the prompt, a word tiny.en gets wrong without it, right with it)
    "wav8k_mono.wav": ("Help desk, printer, floor.", "health desk", "help desk"),
    "wav16k_mono.wav": ("Transcription job, bucket.", "book it", "bucket"),
}


def test_row_prompts_steer_the_words_and_batch_apart(transcriber):
    names = [*PROMPTED, "flac16k_mono.flac"]
    batch = {"id": names, "audio": [(GOOD / n).read_bytes() for n in names]}
    plain = transcriber(batch)
    prompted = transcriber({**batch, "prompt": [PROMPTED[n][0] for n in PROMPTED] + [None]})
    for i, (prompt, wrong, right) in enumerate(PROMPTED.values()):
        assert wrong in plain["text"][i].lower() and right not in plain["text"][i].lower()
        assert right in prompted["text"][i].lower() and prompt not in prompted["text"][i]  # the prompt is not echoed
    assert prompted["text"][-1] == plain["text"][-1]  # a row without a prompt decodes as before


def test_initial_prompt_applies_to_rows_without_one_in_both_long_form_modes(offline_model_dir):
    from asr_actor.config import ModelConfig
    from asr_actor.longform import transcribe_sequential

    prompt, _, right = PROMPTED["wav16k_mono.wav"]
    cfg = TranscriberConfig(model=ModelConfig(id=str(offline_model_dir)), decoding=DecodingConfig(initial_prompt=prompt))
    t = Transcriber(cfg)
    audio = (GOOD / "wav16k_mono.wav").read_bytes()
    assert right in t({"id": ["a"], "audio": [audio]})["text"][0].lower()
    [segments] = transcribe_sequential(t.loaded, [decode_audio(audio).waveform], ["transcribe"], [None], [prompt], cfg.decoding)
    assert right in " ".join(t.loaded.processor.tokenizer.decode(s.tokens, skip_special_tokens=True) for s in segments).lower()


@pytest.fixture(scope="module")
def worded(offline_model_dir):
    from asr_actor.config import ModelConfig

    cfg = TranscriberConfig(model=ModelConfig(id=str(offline_model_dir)), decoding=DecodingConfig(word_timestamps=True))
    return Transcriber(cfg)


def test_word_timestamps_follow_the_fixtures_own_word_timings(worded):
    offsets = []
    for timing in TIMED:
        audio = next(p for p in good_fixtures() if p.stem == timing.name.removesuffix(".words.tsv"))
        out = worded({"id": [audio.name], "audio": [audio.read_bytes()]})
        words = []
        for seg in out["segments"][0]:
            for w in seg["words"]:
                assert seg["start"] <= w["start"] <= w["end"] <= seg["end"] and 0 < w["probability"] <= 1
            words += seg["words"]
        assert [w["start"] for w in words] == sorted(w["start"] for w in words)
        expected = [line.split("\t") for line in timing.read_text().splitlines()]
        assert len(words) == len(expected), audio.name  # these fixtures transcribe word for word
        offsets += [abs(w["start"] - float(e[1])) for w, e in zip(words, expected)]
        offsets += [abs(w["end"] - float(e[2])) for w, e in zip(words, expected)]
    # Measured: median 0.11 s, 105 of 108 boundaries within 0.3 s, the rest within 0.41 s
    # (an end that takes in the pause after a comma, the start of a word after a long one).
    assert statistics.median(offsets) < 0.15 and max(offsets) < 0.5
    assert sum(o <= 0.3 for o in offsets) >= 0.95 * len(offsets)


def test_the_guard_averages_words_not_the_timestamps_whisper_forces():
    import torch

    vocab, end, ts = 10, 5, 6  # ids < 5 text, 5 the end token, >= 6 timestamps
    steps = [(ts, 0.0), (1, -1.6), (ts + 2, 0.0), (end, -0.05)]  # "<|0.00|> you <|2.00|> <|endoftext|>"
    scores = []
    for token, logprob in steps:
        row = torch.full((vocab,), -1e4)
        row[(token + 1) % vocab] = float(np.log(-np.expm1(logprob))) if logprob < 0 else -1e4
        row[token] = logprob
        scores.append(row)
    tokens = torch.tensor([t for t, _ in steps])
    out = {"scores": tuple(scores), "sequences": torch.cat([torch.tensor([9]), tokens])}
    signals = judge(out, tokens, 0.95, 0.0, end, ts, lambda ids: " you" if ids else "")
    assert signals.avg_logprob == pytest.approx(-1.6, abs=0.01)  # OpenAI's average would be -0.41: kept
    assert signals.first_index == 1 and len(signals.token_probs) == 4
    assert compression_ratio("the cat sat on the mat " * 20) > 2.4 > compression_ratio("A corrupt file should never stop.")


def test_the_guard_scores_half_precision_passes_in_float32():
    import torch

    torch.manual_seed(0)
    logits = torch.randn(6, 51864) * 8
    tokens = logits.argmax(-1)
    end = 50256
    decode = lambda ids: " words"  # noqa: E731
    exact = judge({"scores": tuple(logits), "sequences": tokens}, tokens, None, 0.0, end, end + 1, decode)
    half = judge({"scores": tuple(logits.bfloat16()), "sequences": tokens}, tokens, None, 0.0, end, end + 1, decode)
    # Scores of a bfloat16 model: softmax over the vocabulary in bfloat16 would be off by ~1e-2.
    bf16_avg = float(torch.log_softmax(logits.bfloat16(), -1).gather(-1, tokens[:, None]).float().mean())
    upcast = float(torch.log_softmax(logits.bfloat16().float(), -1).gather(-1, tokens[:, None]).mean())
    assert half.avg_logprob == pytest.approx(upcast, abs=1e-6) and half.avg_logprob != bf16_avg
    assert half.avg_logprob == pytest.approx(exact.avg_logprob, abs=0.05)
