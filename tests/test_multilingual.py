"""Language and task code paths on a tiny random multilingual Whisper (no accuracy here)."""

from __future__ import annotations

import numpy as np
import pytest

from asr_actor.config import DecodingConfig, ModelConfig, TranscriberConfig
from asr_actor.transcriber import Transcriber
from conftest import GOOD, cpu_dtype
from multilingual_model import _languages, build


@pytest.fixture(scope="module")
def folder(tmp_path_factory, offline_model_dir):
    return build(tmp_path_factory.mktemp("ml") / "whisper-random-multilingual", offline_model_dir)


def _transcriber(folder, **decoding) -> Transcriber:
    cfg = TranscriberConfig(
        model=ModelConfig(id=str(folder)), decoding=DecodingConfig(batch_size=4, max_new_tokens=12, **decoding)
    )
    return Transcriber(cfg)


@pytest.fixture(scope="module")
def multilingual(folder):
    return _transcriber(folder)


def _batch(**extra):
    paths = [GOOD / "wav16k_mono.wav", GOOD / "flac16k_mono.flac", GOOD / "opus48k_mono.ogg"]
    return {"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths], **extra}


def test_model_reports_multilingual(multilingual):
    assert multilingual.info.multilingual is True
    assert multilingual.info.dtype == cpu_dtype() and multilingual.info.device == "cpu"


def test_language_is_detected_when_none_is_given(multilingual):
    import torch

    batch = _batch(language=["de", None, None])
    out = multilingual(batch)
    assert out["error"] == [None, None, None]
    assert out["language"][0] == "de"  # given: kept, not detected
    # Not given: the model's own language token for the file's first window.
    first_windows = multilingual.preprocess(batch)["features"]
    id_to_code = {v: k.strip("<|>") for k, v in multilingual.loaded.model.generation_config.lang_to_id.items()}
    with torch.inference_mode():
        ids = multilingual.loaded.model.detect_language(
            input_features=torch.from_numpy(np.stack([f[0] for f in first_windows[1:]])).to(multilingual.loaded.model.dtype)
        )
    assert out["language"][1:] == [id_to_code[int(i)] for i in ids.view(-1)]
    assert all(code in _languages() for code in out["language"][1:])
    assert all(isinstance(t, str) for t in out["text"])


def test_translate_and_per_row_languages(multilingual):
    out = multilingual(_batch(language=["fr", "ja", "xx"], task=["translate", "transcribe", None]))
    assert out["language"][:2] == ["fr", "ja"] and out["error"][:2] == [None, None]
    assert out["error"][2] == "transcribe: model {} does not know language 'xx'".format(multilingual.config.model.id)


def test_config_language_is_the_default(folder):
    out = _transcriber(folder, language="es")(_batch(language=[None, "it", None]))
    assert out["language"] == ["es", "it", "es"]


def _count_encoder_rows(t: Transcriber) -> list[int]:
    """Rows the encoder actually computes (its first layer runs: a reused output does not count)."""
    rows: list[int] = []
    t.loaded.model.get_encoder().conv1.register_forward_hook(lambda _m, _a, out: rows.append(out.shape[0]))
    return rows


def _count_window_passes(t: Transcriber) -> list[int]:
    passes: list[int] = []
    judge = t.loaded.model._need_fallback

    def counting(sequence, outputs, index, *args):
        passes.append(1)
        return judge(sequence, outputs, index, *args)

    t.loaded.model._need_fallback = counting
    return passes


def test_no_speech_detection_reuses_the_encoder_pass_of_each_decoding_pass(folder):
    batch = _batch(language=["en", "de", "en"])
    greedy = _transcriber(folder, temperatures=(0.0,))  # one pass per window; no_speech_threshold is on
    encoder_rows, windows = _count_encoder_rows(greedy), []
    greedy.on_windows = windows.append
    shared = greedy(batch)
    assert shared["error"] == [None] * 3 and encoder_rows and sum(encoder_rows) == sum(windows)
    # transformers' own detection, put back: a second full forward per pass, the same probabilities and tokens
    del greedy.loaded.model._setup_no_speech_detection
    encoder_rows.clear()
    windows.clear()
    own = greedy(batch)
    assert sum(encoder_rows) == 2 * sum(windows)
    assert own["segments"] == shared["segments"] and own["text"] == shared["text"]
    assert all(s["no_speech_prob"] is not None for segs in shared["segments"] for s in segs)

    fallback = _transcriber(folder)  # random weights fail the guards: passes are redone hotter
    encoder_rows, passes = _count_encoder_rows(fallback), _count_window_passes(fallback)
    out = fallback(batch)
    assert out["error"] == [None] * 3 and len(passes) > sum(windows)  # fallbacks happened
    assert sum(encoder_rows) == len(passes)  # one encoder row per window per pass, whatever the guards


def test_language_detection_reuses_the_encoder_pass_of_the_first_window(folder):
    t = _transcriber(folder, temperatures=(0.0,))
    encoder_rows, windows = _count_encoder_rows(t), []
    t.on_windows = windows.append
    detected = t(_batch())  # no language anywhere: each file's is detected from its first window
    assert detected["error"] == [None] * 3 and all(detected["language"])
    assert sum(encoder_rows) == sum(windows)  # not one more per file for the detection
    given = t(_batch(language=detected["language"]))  # the same languages, given: the same decoding
    assert given["segments"] == detected["segments"] and given["language"] == detected["language"]


def test_rows_carry_their_task_and_how_sure_the_detection_was(multilingual):
    out = multilingual(_batch(language=["de", None, None], task=["translate", None, "transcribe"]))
    assert out["error"] == [None] * 3
    assert out["task"] == ["translate", "transcribe", "transcribe"]  # the row's, else decoding.task
    assert out["language_probability"][0] is None  # given, not detected
    assert all(0.0 < p <= 1.0 for p in out["language_probability"][1:])
    transcript = multilingual.transcribe(GOOD / "wav16k_mono.wav", task="translate", quiet=True)
    assert transcript.task == "translate" and 0.0 < transcript.language_probability <= 1.0


def _long_waveform() -> np.ndarray:
    """Five files, three times over, one after another: more than three 30 s windows."""
    from asr_actor.audio import decode_audio

    names = ["wav16k_mono.wav", "flac16k_mono.flac", "opus48k_mono.ogg", "mp3_22k_mono.mp3", "wav8k_mono.wav"]
    return np.concatenate([decode_audio((GOOD / n).read_bytes()).waveform for n in names] * 3)


@pytest.mark.parametrize("long_form", ["chunked", "sequential"])
def test_an_unsure_first_window_is_decided_from_more_of_the_file(folder, long_form):
    from asr_actor.language import decide, distributions, language_tokens
    from asr_actor.windows import WINDOW_SAMPLES

    wave = _long_waveform()
    assert len(wave) > 2 * WINDOW_SAMPLES
    one = _transcriber(folder, long_form=long_form, language_detection_threshold=0.0)  # never unsure: first window only
    more = _transcriber(folder, long_form=long_form, language_detection_threshold=1.0, language_detection_windows=3)
    batch = {"id": ["long"], "waveform": [wave]}
    first, decided = one(dict(batch)), more(dict(batch))
    assert first["error"] == decided["error"] == [None]

    # what the model says of each window, read directly
    prepared = more.preprocess(dict(batch))
    if long_form == "chunked":
        windows = list(prepared["features"][0][:3])
    else:
        windows = [more.log_mel.one(wave[k * WINDOW_SAMPLES : (k + 1) * WINDOW_SAMPLES]) for k in range(3)]
    import torch

    x = torch.from_numpy(np.stack(windows)).to(more.loaded.model.dtype)
    dists = distributions(more.loaded, input_features=x)
    codes = language_tokens(more.loaded)[0]
    alone = decide(codes, [dists[0]])
    assert first["language"][0] == alone.language
    assert first["language_probability"][0] == pytest.approx(alone.probability, rel=1e-4)
    assert alone.probability < 0.5  # random weights: unsure
    want = decide(codes, list(dists))
    assert decided["language"][0] == want.language
    assert decided["language_probability"][0] == pytest.approx(want.probability, rel=1e-4)
    # every window, the first included, is decoded in the decided language: as if it had been given
    given = more({"id": ["long"], "waveform": [wave], "language": [want.language]})
    assert given["segments"] == decided["segments"] and given["language_probability"] == [None]
