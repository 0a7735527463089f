"""``audio.channels: split``: each channel of a call transcribed on its own, one row per file.

The fixture (tests/data/channels/) is a stereo call: one voice on the left, another
on the right starting 2 s later, the two talking over each other. The transcriber is
the real converted tiny.en; decoding, windows, VAD and the wire are the real code.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pyarrow as pa
import pytest

from asr_actor.audio import SAMPLE_RATE, decode_audio
from asr_actor.config import AudioConfig, ConfigError, DecodingConfig, ModelConfig, TranscriberConfig
from asr_actor.features import LogMel
from asr_actor.model_plan import ModelPlan
from asr_actor.preprocess import decode_batch, window_batch
from asr_actor.schema import CHANNEL, SEGMENTS, WINDOW_CHANNELS, as_table
from asr_actor.segments import CHANNEL_MARK, Segment, stitch
from asr_actor.vad import SpeechDetector
from asr_actor.wer import word_errors
from conftest import BAD, DATA, GOOD
from jobs.run import wire
from jobs.cli import main as cli_main
from jobs.config import load_config
from jobs.run.fingerprint import fingerprint, fingerprint_inputs

CALL = DATA / "channels" / "overlap_stereo.flac"
REFERENCES = [CALL.with_suffix(f".ch{c}.txt").read_text(encoding="utf-8").strip() for c in (0, 1)]
RIGHT_STARTS_S = 2.0  # the right voice starts this late (scripts/make_fixtures.py, CHANNELS)
MONO = GOOD / "flac16k_mono.flac"
SPLIT = AudioConfig(channels="split")


def _turns_text(segments: list[dict]) -> str:
    """The documented text of a split row, rebuilt from its segments: a mark opens each channel's turn."""
    parts, turn = [], None
    for seg in segments:
        if seg[CHANNEL] != turn:
            parts.append(f"[ch{seg[CHANNEL]}]")
            turn = seg[CHANNEL]
        parts.append(seg["text"])
    return " ".join(parts)


def _channel_text(segments: list[dict], channel: int) -> str:
    return " ".join(s["text"] for s in segments if s[CHANNEL] == channel)


# --- decoding ---

def test_split_decode_keeps_each_channel_at_the_files_duration():
    mixed = decode_audio(CALL.read_bytes())
    split = decode_audio(CALL.read_bytes(), split_channels=True)
    assert mixed.waveform.ndim == 1 and split.waveform.shape == (2, len(mixed.waveform))
    assert split.waveform.dtype == np.float32 and split.duration_s == mixed.duration_s == pytest.approx(7.81, abs=0.01)
    quiet = int(1.5 * SAMPLE_RATE)  # the right side is silent until the second voice starts, the left is not
    assert np.abs(split.waveform[1, :quiet]).max() < 1e-3 < np.abs(split.waveform[0, :quiet]).max()


@pytest.mark.parametrize("name", ["flac16k_mono.flac", "mp3_22k_mono.mp3", "opus48k_mono.ogg", "wav8k_mono.wav"])
def test_a_mono_file_splits_into_channel_0_the_same_samples(name):
    data = (GOOD / name).read_bytes()
    split = decode_audio(data, split_channels=True).waveform
    assert split.shape[0] == 1 and np.array_equal(split[0], decode_audio(data).waveform)


@pytest.mark.parametrize("bad", sorted(BAD.iterdir()), ids=lambda p: p.name)
def test_split_decode_keeps_errors_and_their_messages(bad):
    data = bad.read_bytes()
    assert decode_audio(data, split_channels=True).error == decode_audio(data).error


# --- windows and the wire ---

def test_windows_per_channel_cross_the_wire_with_their_channel():
    log_mel = LogMel()
    batch = {"id": ["call", "mono", "bad"], "audio": [CALL.read_bytes(), MONO.read_bytes(), b""]}
    out = window_batch(decode_batch(batch, SPLIT), SPLIT, log_mel)
    call, mono, bad = out["windows"]
    assert call.tolist() == [[0, 124960, 0], [0, 124960, 1]] and mono.tolist() == [[0, 124960, 0]] and bad is None
    assert out["features"][0].shape == (2, log_mel.n_mels, log_mel.frames)
    assert not np.array_equal(out["features"][0][0], out["features"][0][1])  # two sides, two inputs

    table = as_table(wire.pack(out, split_channels=True))  # the CPU stage's output, as Ray moves it
    assert table.column(WINDOW_CHANNELS).to_pylist() == [[0, 1], [0], None]
    back = wire.unpack(table.to_pydict(), log_mel.n_mels, log_mel.frames)
    for got, sent in zip(back["windows"], out["windows"]):
        assert (got is None and sent is None) or np.array_equal(got, sent)
    assert np.array_equal(back["features"][0], out["features"][0]) and back["features"][2] is None


def test_mix_wire_is_as_before_with_no_channel_column():
    log_mel = LogMel()
    out = window_batch(decode_batch({"audio": [CALL.read_bytes()]}, AudioConfig()), AudioConfig(), log_mel)
    assert out["windows"][0].tolist() == [[0, 124960]]
    packed = wire.pack(out)
    assert WINDOW_CHANNELS not in packed and packed["window_bounds"] == [[0, 124960]]
    back = wire.unpack(as_table(packed).to_pydict(), log_mel.n_mels, log_mel.frames)
    assert back["windows"][0].shape == (1, 2)


def test_zero_windows_of_a_split_file_cross_the_wire():
    windows = np.zeros((0, 3), np.int64)  # the VAD heard no speech on any channel
    batch = {"id": ["x"], "features": [np.zeros((0, 80, 3000), np.float32)], "windows": [windows], "waveform": [None]}
    back = wire.unpack(as_table(wire.pack(batch, split_channels=True)).to_pydict(), 80, 3000)
    assert back["windows"][0].shape == (0, 3) and back["features"][0].shape == (0, 80, 3000)


def test_vad_plans_each_channel_from_its_own_speech():
    cfg = dataclasses.replace(SPLIT, vad="silero")
    out = window_batch(decode_batch({"audio": [CALL.read_bytes()]}, cfg), cfg, LogMel(), speech=SpeechDetector(cfg))
    by_channel = {int(c): (int(a), int(b)) for a, b, c in out["windows"][0]}
    assert sorted(by_channel) == [0, 1] and len(out["windows"][0]) == 2
    assert by_channel[0][0] < 0.5 * SAMPLE_RATE  # the left voice speaks from the start
    assert (RIGHT_STARTS_S - 0.6) * SAMPLE_RATE < by_channel[1][0] < RIGHT_STARTS_S * SAMPLE_RATE  # pad_s before it


# --- the transcript ---

def test_stitch_orders_by_start_and_marks_each_turn():
    left = [Segment(0.0, 3.2, "A corrupt file.", channel=0), Segment(3.2, 7.8, "It becomes one error row.", channel=0)]
    right = [Segment(2.0, 7.0, "The weather station.", channel=1)]
    text, segments = stitch([left, right])
    assert [s.text for s in segments] == ["A corrupt file.", "The weather station.", "It becomes one error row."]
    assert text == "[ch0] A corrupt file. [ch1] The weather station. [ch0] It becomes one error row."
    text, _ = stitch([[Segment(0.0, 1.0, "Hi.", channel=1)], [Segment(0.0, 1.0, "Hello.", channel=0)]])
    assert text == "[ch0] Hello. [ch1] Hi."  # same start: the lower channel first
    assert stitch([[Segment(0.0, 1.0, "Hi.")], [Segment(0.5, 1.0, "Yes.")]])[0] == "Hi. Yes."  # mix: no marks
    assert CHANNEL_MARK.format(3) == "[ch3]"


@pytest.fixture(scope="module")
def split_transcriber(offline_model_dir):
    from asr_actor.transcriber import Transcriber

    return Transcriber(TranscriberConfig(model=ModelConfig(id=str(offline_model_dir)), audio=SPLIT))


@pytest.fixture(scope="module")
def split_rows(split_transcriber):
    """The call and a mono file in one batch: three windows (two sides and the mono file) packed together."""
    return split_transcriber({"id": ["call", "mono"], "audio": [CALL.read_bytes(), MONO.read_bytes()]})


def test_split_gives_one_ok_row_whose_sides_match_their_references(split_rows):
    assert split_rows["id"] == ["call", "mono"] and split_rows["error"] == [None, None]
    segments = split_rows[SEGMENTS][0]
    assert {s[CHANNEL] for s in segments} == {0, 1}
    for channel, reference in enumerate(REFERENCES):
        assert word_errors(reference, _channel_text(segments, channel)).wer <= 0.2
    assert split_rows["duration_s"][0] == pytest.approx(7.81, abs=0.01)  # the file's, not the sum of its sides


def test_split_text_is_the_segments_by_start_time_with_a_mark_per_turn(split_rows):
    segments, text = split_rows[SEGMENTS][0], split_rows["text"][0]
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert text == _turns_text(segments)
    assert text.startswith("[ch0] ") and "[ch1] " in text
    assert word_errors(" ".join(REFERENCES), text).reference_words == 39  # the marks are not words to the normalizer


def test_split_packs_the_windows_of_every_channel_of_every_file(split_transcriber, caplog):
    with caplog.at_level(logging.INFO, logger="asr_actor.transcriber"):
        split_transcriber({"id": ["call", "mono"], "audio": [CALL.read_bytes(), MONO.read_bytes()]})
    assert "transcribed 2 files (3 windows)" in caplog.text


def test_a_mono_file_under_split_is_channel_0_with_mix_modes_words(split_transcriber, transcriber):
    one = {"id": ["mono"], "audio": [MONO.read_bytes()]}
    split, mixed = split_transcriber(one), transcriber(one)
    assert split["error"] == [None] and [s[CHANNEL] for s in split[SEGMENTS][0]] == [0] * len(split[SEGMENTS][0])
    assert [s["text"] for s in split[SEGMENTS][0]] == [s["text"] for s in mixed[SEGMENTS][0]]
    assert split["text"][0] == "[ch0] " + mixed["text"][0]


def _ffmpeg_downmix(data: bytes) -> np.ndarray:
    """The downmix as decoding made it before ``audio.channels``: packed float, mono, 16 kHz."""
    import io

    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    with av.open(io.BytesIO(data)) as container:
        frames = [out for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    frames += resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def test_mix_on_the_call_has_no_channel_and_is_the_downmix_as_before(transcriber):
    assert np.array_equal(decode_audio(CALL.read_bytes()).waveform, _ffmpeg_downmix(CALL.read_bytes()))
    out = transcriber({"id": ["call"], "audio": [CALL.read_bytes()]})
    assert out["error"] == [None] and out["duration_s"][0] == pytest.approx(7.81, abs=0.01)
    assert all(CHANNEL not in s for s in out[SEGMENTS][0])  # the JSON lines of mix mode are unchanged
    table = as_table({SEGMENTS: out[SEGMENTS]})
    channels = table.column(SEGMENTS).combine_chunks().flatten().field(CHANNEL)
    assert len(channels) == len(out[SEGMENTS][0]) > 0 and channels.null_count == len(channels)
    assert out["text"][0] == " ".join(s["text"] for s in out[SEGMENTS][0]) and "[ch" not in out["text"][0]


def test_the_jobs_workers_carry_channels_from_the_cpu_stage_to_the_model(split_transcriber):
    """The job's CPU stage and model actor as plain objects (no Ray): Arrow tables between them, as Ray moves them."""
    from jobs.run.workers import PrepareWorker, TranscribeWorker

    cfg = split_transcriber.config
    manifest = pa.table({"id": ["call", "bad"], "uri": [str(CALL), str(BAD / "empty.wav")]})
    prepared = PrepareWorker(cfg.audio, split_transcriber.log_mel, chunked=True)(manifest)
    assert prepared.column(WINDOW_CHANNELS).to_pylist() == [[0, 1], None]
    rows = TranscribeWorker(cfg, split_transcriber.log_mel)(prepared).to_pydict()
    assert rows["error"] == [None, "decode: empty file (0 bytes)"]
    assert {s[CHANNEL] for s in rows[SEGMENTS][0]} == {0, 1} and rows["text"][0] == _turns_text(rows[SEGMENTS][0])


def test_split_with_vad_times_the_right_voice_from_its_speech(offline_model_dir):
    from asr_actor.transcriber import Transcriber

    cfg = TranscriberConfig(model=ModelConfig(id=str(offline_model_dir)), audio=dataclasses.replace(SPLIT, vad="silero"))
    out = Transcriber(cfg)({"id": ["call"], "audio": [CALL.read_bytes()]})
    segments = out[SEGMENTS][0]
    assert out["error"] == [None] and {s[CHANNEL] for s in segments} == {0, 1}
    first_right = min(s["start"] for s in segments if s[CHANNEL] == 1)
    assert RIGHT_STARTS_S - 0.6 < first_right < RIGHT_STARTS_S + 0.5  # file time, not its window's
    for channel, reference in enumerate(REFERENCES):
        assert word_errors(reference, _channel_text(segments, channel)).wer <= 0.2


# --- config, CLI, fingerprint ---

def test_channels_config_values_and_the_sequential_refusal():
    assert AudioConfig().channels == "mix"
    with pytest.raises(ConfigError, match=r"^audio.channels 'both' is not one of \('mix', 'split'\)$"):
        AudioConfig(channels="both")
    with pytest.raises(ConfigError) as refused:
        TranscriberConfig(decoding=DecodingConfig(long_form="sequential"), audio=SPLIT)
    assert str(refused.value) == (
        "audio.channels: split works on the windows of decoding.long_form: chunked, not sequential long form")
    assert load_config(None, ["audio.channels=split"], input="a", output="b").audio.channels == "split"


def test_cli_channels_flag(offline_model_dir, tmp_path, capsys):
    assert cli_main(["transcribe", "--channels", "split", "--long-form", "sequential", str(CALL)]) == 2
    assert capsys.readouterr().err.strip() == (
        "asr-batch: audio.channels: split works on the windows of decoding.long_form: chunked, not sequential long form")
    out = tmp_path / "out.jsonl"
    assert cli_main(["transcribe", "--model", str(offline_model_dir), "--channels", "split", str(CALL), "-o", str(out)]) == 0
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["error"] is None and {s[CHANNEL] for s in row[SEGMENTS]} == {0, 1} and row["text"].startswith("[ch0] ")


PLAN = ModelPlan(model_id="m", weights_id="w1", revision=None, device="cpu", dtype="float32", attention="sdpa",
                 multilingual=False, log_mel=LogMel())
DEFAULT_FINGERPRINT = "43974a20a0007f55"  # the default config with PLAN, computed before audio.channels existed


def test_fingerprint_is_unchanged_for_mix_and_differs_for_split():
    def of(*overrides: str) -> str:
        return fingerprint(fingerprint_inputs(load_config(None, list(overrides), input="a", output="b"), PLAN))

    assert of() == of("audio.channels=mix") == DEFAULT_FINGERPRINT
    assert "channels" not in fingerprint_inputs(TranscriberConfig(), PLAN)["audio"]
    assert fingerprint_inputs(TranscriberConfig(audio=SPLIT), PLAN)["audio"]["channels"] == "split"
    assert of("audio.channels=split") not in (DEFAULT_FINGERPRINT, of("audio.vad=silero"))


def test_segment_channel_is_a_nullable_int32_at_the_end_of_the_struct():
    from asr_actor.schema import SEGMENT

    field = SEGMENT.field(SEGMENT.num_fields - 1)
    assert (field.name, field.type, field.nullable) == (CHANNEL, pa.int32(), True)


@pytest.mark.slow
def test_the_job_splits_channels_across_its_ray_stages(asr_cache, offline_model_dir, tmp_path):
    import pyarrow.parquet as pq

    from servers import run_local_job

    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"id": p.stem, "uri": str(p)}) + "\n" for p in (CALL, MONO)))
    proc = run_local_job(asr_cache, tmp_path / "m.jsonl", tmp_path / "runs", "s", "audio.channels=split", "audio.vad=silero")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["id"]: r for r in pq.read_table(tmp_path / "runs/s/data").to_pylist()}
    call = rows[CALL.stem]
    for channel, reference in enumerate(REFERENCES):
        heard = " ".join(s["text"] for s in call["segments"] if s[CHANNEL] == channel)
        assert word_errors(reference, heard).wer <= 0.2, (channel, heard)
    assert [s["start"] for s in call["segments"]] == sorted(s["start"] for s in call["segments"])
    assert {s[CHANNEL] for s in rows[MONO.stem]["segments"]} == {0} and call["duration_s"] == pytest.approx(7.8, abs=0.1)
