"""The one-call Python API (``asr_actor.transcribe``, ``Transcriber.from_pretrained``) on the real tiny.en."""

from __future__ import annotations

import subprocess
import sys

import pytest

from asr_actor.audio import decode_audio
from conftest import BAD, GOOD

AUDIO = GOOD / "wav8k_mono.wav"


@pytest.fixture(scope="module")
def asr(offline_model_dir):
    from asr_actor import Transcriber

    return Transcriber.from_pretrained(str(offline_model_dir), decoding={"batch_size": 4})


def test_one_call_gives_the_job_engine_row_and_prints_plain_timing(asr, transcriber, capsys):
    result = asr.transcribe(str(AUDIO), task="transcribe")
    row = transcriber({"id": ["x"], "audio": [AUDIO.read_bytes()]})
    assert (result.text, result.segments, result.language) == (row["text"][0], row["segments"][0], row["language"][0])
    assert result.duration_s == pytest.approx(5.1, abs=0.1) and result.wall_s > 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"transcribed {AUDIO}: 5.1 s of audio in ") and "RTFx" in err[-1] and "\x1b" not in err[-1]


def test_bytes_and_samples_give_the_same_text_and_quiet_prints_nothing(asr, capsys):
    data = AUDIO.read_bytes()
    texts = {asr.transcribe(data, quiet=True).text, asr.transcribe(decode_audio(data).waveform, quiet=True).text}
    assert len(texts) == 1 and "printer" in texts.pop() and capsys.readouterr().err == ""


def test_a_file_that_cannot_be_transcribed_raises_with_the_job_cause(asr):
    from asr_actor import TranscriptionError

    with pytest.raises(TranscriptionError, match=r"empty.wav: decode: empty file \(0 bytes\)"):
        asr.transcribe(BAD / "empty.wav")
    with pytest.raises(TranscriptionError, match=r"fetch: cannot read .*missing.wav: No such file or directory"):
        asr.transcribe(BAD / "missing.wav")
    with pytest.raises(Exception, match=r"decoding: unknown key\(s\) \['beams'\]"):
        type(asr).from_pretrained("offline:tiny.en", decoding={"beams": 2})


def test_importing_the_package_loads_no_model_library():
    code = "import sys, asr_actor, asr_actor.config; print('torch' in sys.modules, 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["False", "False"]


def test_the_module_level_call_loads_once(offline_model_dir):
    from asr_actor import api

    first = api.transcribe(AUDIO, model=str(offline_model_dir), quiet=True)
    again = api.transcribe(AUDIO, model=str(offline_model_dir), quiet=True)
    assert first.text == again.text and api._cached.cache_info().hits >= 1
