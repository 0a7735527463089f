"""``audio.vad: silero``: windows only where Silero VAD finds speech (and, in the job test, row prompts).

Window planning over speech stretches is pure logic on synthetic spans; the detector,
the transcriber and the whole job (a real local Ray, the CPU stage running the VAD)
use the real silero-vad model and the real converted tiny.en on the committed fixtures.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from asr_actor.audio import SAMPLE_RATE, decode_audio
from asr_actor.config import AudioConfig, ConfigError, DecodingConfig, ModelConfig, TranscriberConfig, from_mapping
from asr_actor.vad import SpeechDetector
from asr_actor.windows import WINDOW_SAMPLES, plan_speech_windows
from conftest import DATA, GOOD
from servers import run_local_job

S = SAMPLE_RATE
NONSPEECH = sorted((DATA / "nonspeech").iterdir())


def _covers(windows, spans):
    for start, end in spans:
        inside = [w for w in windows if w.start < end and w.end > start]
        assert inside and inside[0].start <= start and inside[-1].end >= end, (start, end, windows)
        assert all(a.end == b.start for a, b in zip(inside, inside[1:]))  # a long stretch is cut, not trimmed


# How many windows each case needs follows from the rule (min_window_s 20): a window starts where
# speech starts and ends after the last stretch that ends within 30 s, unless that leaves it under
# 20 s while more speech follows within 30 s; then it is cut inside that speech, 20 to 30 s after
# its start, at the noise's quietest moment. Where such a cut lands is up to the noise, so speech
# cut into windows has a range: n windows cover L s of it when 30 n >= L > 20 (n - 1).
@pytest.mark.parametrize(("spans_s", "fewest", "most"), [
    ([(1, 4)], 1, 1),
    # Long silences between: skipped. 0-5 and 50-55 get one window each (the next speech starts over
    # 30 s later); 120-170 is cut 20 to 30 s in, which leaves 20 to 30 s: one more.
    ([(0, 5), (50, 55), (120, 170)], 4, 4),
    # Short pauses: one window holds what fits in 30 s (0-29); 31-40 starts past 0 + 30 s: a second.
    ([(0, 10), (12, 25), (27, 29), (31, 40)], 2, 2),
    # One stretch over 30 s, cut inside it: 93 s, 30 n >= 93 > 20 (n - 1).
    ([(2, 95)], 4, 5),
    # 0-3 is under 20 s and 25-80 starts within 30 s: cut inside 25-80, 25 to 30 s from 0; the 50 to
    # 55 s left of it take 2 or 3 (30 n >= 50, 20 (n - 1) < 55); 200-201 one.
    ([(0, 3), (25, 80), (200, 201)], 4, 5),
])
def test_speech_windows_cover_every_stretch_and_skip_long_silence(spans_s, fewest, most):
    spans = [(a * S, b * S) for a, b in spans_s]
    waveform = np.random.default_rng(0).standard_normal(spans[-1][1] + 5 * S).astype(np.float32)
    windows = plan_speech_windows(waveform, spans, 20.0)
    assert fewest <= len(windows) <= most, windows
    _covers(windows, spans)
    assert all(0 < w.end - w.start <= WINDOW_SAMPLES for w in windows)
    assert all(a.end <= b.start for a, b in zip(windows, windows[1:]))  # in order, no sample twice
    for gap_start, gap_end in zip([e for _, e in spans], [s for s, _ in spans[1:]]):
        if gap_end - gap_start > WINDOW_SAMPLES:  # a silence too long for any window is never decoded
            assert not any(w.start < gap_end and w.end > gap_start for w in windows)


def test_no_speech_means_no_windows():
    assert plan_speech_windows(np.zeros(40 * S, np.float32), [], 20.0) == []


def test_vad_config_reads_yaml_off_and_refuses_sequential_long_form():
    assert from_mapping(AudioConfig, {"vad": False}).vad == "off"  # YAML 1.1 reads `vad: off` as false
    with pytest.raises(ConfigError, match=r"audio.vad 'webrtc' is not one of \('off', 'silero'\)"):
        AudioConfig(vad="webrtc")
    with pytest.raises(ConfigError, match="audio.vad works on the windows of decoding.long_form: chunked"):
        TranscriberConfig(decoding=DecodingConfig(long_form="sequential"), audio=AudioConfig(vad="silero"))


@pytest.fixture(scope="module")
def detector():
    return SpeechDetector(AudioConfig(vad="silero"))


@pytest.mark.parametrize("audio", NONSPEECH, ids=lambda p: p.name)
def test_silero_finds_no_speech_in_the_non_speech_fixtures(audio, detector):
    assert detector.spans(decode_audio(audio.read_bytes()).waveform) == []


def test_silero_finds_both_utterances_around_a_long_silence(detector):
    spans = detector.spans(decode_audio((GOOD / "silence_inside_speech.flac").read_bytes()).waveform)
    words = [line.split("\t") for line in (GOOD / "silence_inside_speech.words.tsv").read_text().splitlines()]
    starts, ends = [float(w[1]) * S for w in words], [float(w[2]) * S for w in words]  # word, start, end
    pause = max(zip(ends, starts[1:]), key=lambda gap: gap[1] - gap[0])  # 2.1 s to 16.5 s: the longest gap
    # The pause is not speech: each stretch reaches into it only by vad_pad_s, give or take where Silero's
    # 32 ms frames cross the threshold (the tail of a word's sound outlasts its label): 0.25 s allowed.
    slack = int((AudioConfig().vad_pad_s + 0.25) * S)
    assert len(spans) == 2 and spans[0][1] <= pause[0] + slack and spans[1][0] >= pause[1] - slack, spans
    assert all(any(a <= s and e <= b for a, b in spans) for s, e in zip(starts, ends))  # every word inside


@pytest.fixture(scope="module")
def vad_transcriber(offline_model_dir):
    from asr_actor.transcriber import Transcriber

    return Transcriber(TranscriberConfig(model=ModelConfig(id=str(offline_model_dir)), audio=AudioConfig(vad="silero")))


def test_with_vad_non_speech_costs_no_window_and_speech_keeps_its_words(vad_transcriber, transcriber):
    files = [*NONSPEECH, GOOD / "silence_inside_speech.flac", GOOD / "wav16k_mono.wav"]
    batch = {"id": [p.name for p in files], "audio": [p.read_bytes() for p in files]}
    prepared = vad_transcriber.preprocess(batch)
    assert [len(w) for w in prepared["windows"]] == [0] * len(NONSPEECH) + [1, 1]
    out, plain = vad_transcriber(prepared), transcriber(batch)
    assert out["error"] == [None] * len(files)
    assert out["text"][: len(NONSPEECH)] == [""] * len(NONSPEECH) and out["segments"][: len(NONSPEECH)] == [[]] * len(NONSPEECH)
    assert out["text"][len(NONSPEECH):] == plain["text"][len(NONSPEECH):]
    assert [s["start"] for s in out["segments"][-2]] == [s["start"] for s in plain["segments"][-2]]  # times in the file's clock


@pytest.mark.slow
def test_the_job_runs_the_vad_in_its_cpu_stage_and_row_prompts_in_the_model(asr_cache, offline_model_dir, tmp_path):
    files = [NONSPEECH[0], GOOD / "silence_inside_speech.flac", GOOD / "wav8k_mono.wav"]
    prompts = [None, None, "Help desk, printer, floor."]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"id": p.stem, "uri": str(p), "prompt": q}) + "\n"
                                              for p, q in zip(files, prompts)))
    proc = run_local_job(asr_cache, tmp_path / "m.jsonl", tmp_path / "runs", "v", "audio.vad=silero")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("done: 3 ok, 0 failed")
    rows = {r["id"]: r for r in pq.read_table(tmp_path / "runs/v/data").to_pylist()}
    assert rows[NONSPEECH[0].stem]["text"] == "" and rows[NONSPEECH[0].stem]["segments"] == []
    assert len(rows["silence_inside_speech"]["segments"]) == 2 and rows["wav8k_mono"]["text"].startswith("Call the")
    assert "help desk" in rows["wav8k_mono"]["text"].lower() and rows["wav8k_mono"]["prompt"] == prompts[2]  # passed through
    assert json.loads((tmp_path / "runs/v/run.json").read_text())["config"]["audio"]["vad"] == "silero"
