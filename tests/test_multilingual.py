"""Language and task code paths on a tiny random multilingual Whisper (no accuracy here)."""

from __future__ import annotations

import pytest

from asr_actor.config import DecodingConfig, ModelConfig, TranscriberConfig
from asr_actor.transcriber import Transcriber
from conftest import GOOD
from multilingual_model import _languages, build


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory, offline_model_dir):
    folder = build(tmp_path_factory.mktemp("ml") / "whisper-random-multilingual", offline_model_dir)
    cfg = TranscriberConfig(
        model=ModelConfig(id=str(folder)), decoding=DecodingConfig(batch_size=4, max_new_tokens=12)
    )
    return Transcriber(cfg)


def _batch(**extra):
    paths = [GOOD / "wav16k_mono.wav", GOOD / "flac16k_mono.flac", GOOD / "opus48k_mono.ogg"]
    return {"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths], **extra}


def test_model_reports_multilingual(multilingual):
    assert multilingual.info.multilingual is True
    assert multilingual.info.dtype == "float32" and multilingual.info.device == "cpu"


def test_language_is_detected_when_none_is_given(multilingual, monkeypatch):
    import asr_actor.transcriber as transcriber_module

    calls = []
    real = transcriber_module.detect_languages
    monkeypatch.setattr(
        transcriber_module, "detect_languages", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k)
    )
    out = multilingual(_batch(language=["de", None, None]))
    assert out["error"] == [None, None, None]
    assert out["language"][0] == "de"
    assert calls == [2]  # only the two rows without a language, one window each
    assert all(code in _languages() for code in out["language"][1:])
    assert all(isinstance(t, str) for t in out["text"])


def test_translate_and_per_row_languages(multilingual):
    out = multilingual(_batch(language=["fr", "ja", "xx"], task=["translate", "transcribe", None]))
    assert out["language"][:2] == ["fr", "ja"] and out["error"][:2] == [None, None]
    assert out["error"][2] == "transcribe: model {} does not know language 'xx'".format(multilingual.config.model.id)


def test_config_language_is_the_default(multilingual):
    import dataclasses

    original = multilingual.config
    multilingual.config = dataclasses.replace(original, decoding=dataclasses.replace(original.decoding, language="es"))
    try:
        out = multilingual(_batch(language=[None, "it", None]))
    finally:
        multilingual.config = original
    assert out["language"] == ["es", "it", "es"]
